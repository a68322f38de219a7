"""Shared fixtures. Tests that need ../shared skip with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PMGI_SHARED", ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path below ../shared, or skip the test when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the shared reference data is not on this machine)")
    return path


@pytest.fixture
def shared():
    return shared_path
