"""Where resources, shipped weights and user files live, from a source checkout and
from a frozen (PyInstaller) bundle alike."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["bundle_root", "resources_dir", "weights_dir", "user_data_dir", "user_checkpoints_dir",
           "user_config_dir"]

APP_NAME = "pmgi-fusion-studio"


def bundle_root() -> Path:
    """The folder holding `resources/` and `weights/`."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen)
    return Path(__file__).resolve().parent.parent


def resources_dir() -> Path:
    return bundle_root() / "resources"


def weights_dir() -> Path:
    return bundle_root() / "weights"


def user_data_dir() -> Path:
    """Per-user data (imported and fine-tuned checkpoints). PMGI_USER_DIR overrides it,
    so that tests never touch a real user's files."""
    override = os.environ.get("PMGI_USER_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def user_checkpoints_dir() -> Path:
    return user_data_dir() / "checkpoints"


def user_config_dir() -> Path:
    """Per-user settings of the application. PMGI_CONFIG_DIR overrides it, so that
    tests never read or change a real user's settings."""
    override = os.environ.get("PMGI_CONFIG_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
