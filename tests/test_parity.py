"""The network against the independent parity vectors of the official checkpoints."""

from pathlib import Path

import numpy as np
import pytest

from pmgi_gui.cli import main as pmgi
from pmgi_gui.core import imageio
from pmgi_gui.core.checkpoints import load_checkpoint
from pmgi_gui.core.engine import fuse_gray
from tests.conftest import SHARED

PARITY = SHARED / "reference" / "parity"
OFFICIAL = SHARED / "reference" / "pmgi-official"
VECTORS = sorted(p for p in PARITY.glob("*/*") if p.is_dir()) if PARITY.is_dir() else []


def _source(vector: Path) -> tuple[str, str, int | None]:
    """(task, official checkpoint folder, band) of one parity vector."""
    task = vector.parent.name
    if task == "pan-sharpening":
        band = int(vector.name.rsplit("_band", 1)[1])
        return task, f"pan-sharpening-band{band}", band
    return task, task, None


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    pytest.importorskip("tensorflow", reason="the 'official' extra (TensorFlow) is not installed")
    out = tmp_path_factory.mktemp("official")
    cache = {}

    def get(vector):
        task, folder, band = _source(vector)
        if folder not in cache:
            index = next((OFFICIAL / folder).glob("*.index"))
            dest = out / task
            args = ["import-official", str(index)[: -len(".index")], "--task", task, "-o", str(dest)]
            if band:
                args += ["--band", str(band)]
            assert pmgi(args) == 0
            cache[folder] = dest
        return load_checkpoint(cache[folder]), band

    return get


def test_all_sixteen_vectors_are_present():
    if not PARITY.is_dir():
        pytest.skip(f"needs {PARITY} (the shared reference data is not on this machine)")
    assert len(VECTORS) == 16
    assert {v.parent.name for v in VECTORS} == {"ir-vis", "multi-exposure", "medical", "multi-focus",
                                                "pan-sharpening"}


@pytest.mark.parametrize("vector", VECTORS, ids=[f"{v.parent.name}/{v.name}" for v in VECTORS])
def test_network_output_matches_official(vector, imported, tmp_path):
    ckpt, band = imported(vector)
    model = ckpt.load_model(band=band)
    a = imageio.to_gray(imageio.read_image(vector / "a.png"))
    b = imageio.to_gray(imageio.read_image(vector / "b.png"))
    y = fuse_gray(model, a, b)
    official = np.load(vector / "official.npy")
    diff = np.abs(y - official)
    assert y.shape == official.shape
    assert diff.max() < 1e-3, f"max abs diff {diff.max():.2e}"
    assert diff.mean() < 2e-5, f"mean abs diff {diff.mean():.2e}"

    # The same through the command line, saved the way the released script saved.
    out = tmp_path / "fused.png"
    args = ["fuse", "--task", ckpt.task, str(vector / "a.png"), str(vector / "b.png"), "-o", str(out),
            "--checkpoint", str(ckpt.path), "--network-only", "--stretch", "--device", "cpu"]
    if band:
        args += ["--band", str(band)]
    assert pmgi(args) == 0
    png = imageio.read_image(out).astype(int)
    ref = imageio.read_image(vector / "official.png").astype(int)
    assert np.abs(png - ref).max() <= 1
