"""Task pipelines on real pairs and on constructed cases with known answers."""

import numpy as np
import pytest

from pmgi_gui.core import imageio
from pmgi_gui.core.errors import ImageError
from pmgi_gui.core.fusion import PmgiFuser, fuse
from pmgi_gui.core.tasks import TASK_NAMES, PipelineOptions, fuse_pair, get_task
from tests.conftest import SHARED, shared_path
from tests.helpers import random_checkpoint, scene

PAIRS = [(t, p.name) for t in TASK_NAMES for p in sorted((SHARED / "data" / t).glob("*"))
         if p.is_dir()] if (SHARED / "data").is_dir() else []


def _read_pair(task, pair):
    folder = shared_path("data", task, pair)
    t = get_task(task)
    a = next(folder.glob(f"{t.stem_a}.*"))
    b = next(folder.glob(f"{t.stem_b}.*"))
    return imageio.read_image(a), imageio.read_image(b)


@pytest.fixture(scope="module")
def fusers(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return {t: PmgiFuser(random_checkpoint(root / t, task=t, normalisation="batch"), device="cpu")
            for t in TASK_NAMES}


@pytest.mark.skipif(not PAIRS, reason="needs ../shared/data (the shared data is not on this machine)")
@pytest.mark.parametrize("task, pair", PAIRS, ids=[f"{t}/{p}" for t, p in PAIRS])
def test_pipeline_runs_end_to_end_on_real_pairs(task, pair, fusers):
    a, b = _read_pair(task, pair)
    result = fuse(task, a, b, fuser=fusers[task])
    out = result.pixels
    assert np.isfinite(out.astype(np.float64)).all()
    if task == "pan-sharpening":
        assert out.shape == (*b.shape[:2], a.shape[2])  # PAN grid, MS bands
        assert out.dtype == a.dtype                      # 16-bit in, 16-bit out
    else:
        assert out.shape[:2] == a.shape[:2] and out.dtype == np.uint8
        colour_in = any(x.ndim == 3 and not (np.array_equal(x[..., 0], x[..., 1])
                                             and np.array_equal(x[..., 1], x[..., 2])) for x in (a, b))
        if task == "ir-vis":
            colour_in = b.ndim == 3 and not np.array_equal(b[..., 0], b[..., 1])
        assert (out.ndim == 3 and out.shape[2] == 3) == (colour_in or task == "medical")
    assert result.checkpoint_sha256 and result.seconds > 0


def test_colour_visible_keeps_its_colour():
    rng = np.random.default_rng(0)
    vis = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    ir = scene(32, 40)
    out = fuse_pair("ir-vis", ir, vis, gray_fuse=lambda a, b, band: b)  # identity on the visible
    assert out.shape == (32, 40, 3)
    assert np.abs(out.astype(int) - vis.astype(int)).max() <= 2  # YCbCr round trip + rounding
    gray_out = fuse_pair("ir-vis", ir, scene(32, 40, 5), gray_fuse=lambda a, b, band: a)
    assert gray_out.ndim == 2 and np.array_equal(gray_out, ir)


def test_multi_exposure_fuses_y_and_weights_chroma():
    under = np.full((8, 8, 3), (40, 20, 10), np.uint8)
    over = np.full((8, 8, 3), (230, 230, 230), np.uint8)  # nearly neutral: little chroma weight
    out = fuse_pair("multi-exposure", under, over, gray_fuse=lambda a, b, band: (a + b) / 2)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    r, g, bl = out[0, 0].astype(int)
    assert r > g > bl  # the under-exposed source's warm colour survives


def test_medical_range_preserving_ihs_does_not_saturate_bright_pet():
    pet = np.zeros((16, 16, 3), np.uint8)
    pet[:8] = (255, 240, 60)   # bright yellow: I = (R+G+B)/sqrt3 > 1, clipped by the released scripts
    pet[8:] = (200, 30, 10)
    mri = scene(16, 16)
    identity = lambda a, b, band: a  # noqa: E731  (fusion that keeps the PET intensity)
    ours = fuse_pair("medical", pet, mri, gray_fuse=identity)
    assert np.abs(ours.astype(int) - pet.astype(int)).max() <= 1
    released = fuse_pair("medical", pet, mri, gray_fuse=identity,
                         options=PipelineOptions(medical_ihs="released"))
    # Released: I = 2.18/sqrt3 = 1.256 clipped to 1, so every channel loses
    # 0.256/sqrt3*255 = 38 levels where the PET is bright, and none where it is not.
    assert (pet[:8].astype(int) - released[:8].astype(int)).min() >= 35
    assert np.abs(released[8:].astype(int) - pet[8:].astype(int)).max() <= 1


def test_gray_pet_gets_a_colour_map():
    pet = scene(24, 24, 3)
    out = fuse_pair("medical", pet, scene(24, 24, 4), gray_fuse=lambda a, b, band: a,
                    options=PipelineOptions(pet_colormap="hot"))
    assert out.shape == (24, 24, 3)
    assert not np.array_equal(out[..., 0], out[..., 2])  # colour, not gray


def test_pan_keeps_band_order_and_bit_depth():
    rng = np.random.default_rng(1)
    ms = (rng.random((10, 12, 5)) * 3000 + np.arange(5) * 10000).astype(np.uint16)
    pan = rng.integers(0, 40000, (40, 48), dtype=np.uint16)
    out = fuse_pair("pan-sharpening", ms, pan, pan_fuse=lambda up, p: up)
    assert out.shape == (40, 48, 5) and out.dtype == np.uint16
    means = out.reshape(-1, 5).mean(0)
    assert np.all(np.diff(means) > 5000)  # band k stays band k
    seen = []
    out2 = fuse_pair("pan-sharpening", ms, pan, gray_fuse=lambda a, b, band: seen.append(band) or a)
    assert seen == [1, 2, 3, 4, 5] and out2.dtype == np.uint16
    for k in range(5):  # histogram matching brings each band back to its own range
        assert abs(out2[..., k].mean() - ms[..., k].mean()) < 0.02 * ms[..., k].mean()


@pytest.mark.parametrize("task, a, b, message", [
    ("ir-vis", (10, 10), (10, 12), "the infrared image is 10x10 but the visible image is 12x10"),
    ("ir-vis", (10, 10, 5), (10, 10), "the infrared image has 5 bands"),
    ("pan-sharpening", (10, 10, 4), (40, 41), "must be exactly 4x the multispectral size: MS is 10x10, "
                                              "so PAN should be 40x40, but it is 41x40"),
    ("pan-sharpening", (10, 10, 2), (40, 40), "the multispectral image has 2 band(s)"),
    ("pan-sharpening", (10, 10, 9), (40, 40), "the multispectral image has 9 band(s)"),
    ("pan-sharpening", (10, 10, 4), (40, 40, 3), "the panchromatic image has 3 bands"),
])
def test_mismatches_are_explained(task, a, b, message):
    with pytest.raises(ImageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fuse_pair(task, np.zeros(a, np.uint8), np.zeros(b, np.uint8), gray_fuse=lambda x, y, k: x,
                  pan_fuse=lambda x, y: x)


@pytest.mark.skipif(not PAIRS, reason="needs ../shared/data (the shared data is not on this machine)")
@pytest.mark.parametrize("task", TASK_NAMES)
def test_every_baseline_runs_through_the_same_pipeline(task):
    from pmgi_gui.core.fusion import PMGI_METHOD, methods_for

    pair = next(p for t, p in PAIRS if t == task)
    a, b = _read_pair(task, pair)
    keys = [k for k, _ in methods_for(task) if k != PMGI_METHOD]
    assert "average" in keys and len(keys) >= 2
    for key in keys:
        out = fuse(task, a, b, method=key).pixels
        if task == "pan-sharpening":
            assert out.shape == (*b.shape[:2], a.shape[2]) and out.dtype == a.dtype, key
        else:
            assert out.shape[:2] == a.shape[:2] and out.dtype == np.uint8, key


def test_unknown_method_is_explained():
    from pmgi_gui.core.errors import PmgiError

    with pytest.raises(PmgiError, match="unknown method 'gff' for ir-vis; choose one of pmgi, average"):
        fuse("ir-vis", scene(8, 8), scene(8, 8), method="gff")


@pytest.mark.parametrize("task", TASK_NAMES)
def test_network_inputs_are_what_fuse_pair_feeds(task):
    """Training reads its gray inputs through network_inputs: they must be exactly
    the arrays the inference pipeline hands to the network."""
    from pmgi_gui.core.tasks import network_inputs

    rng = np.random.default_rng(2)
    if task == "pan-sharpening":
        a = rng.integers(0, 2048, (8, 10, 4), dtype=np.uint16)
        b = rng.integers(0, 2048, (32, 40), dtype=np.uint16)
    else:
        a = rng.integers(0, 256, (12, 14, 3), dtype=np.uint8)
        b = scene(12, 14, 1)
    seen = []
    fuse_pair(task, a, b, gray_fuse=lambda x, y, band: seen.append((x, y)) or x)
    inputs = network_inputs(task, a, b)
    assert len(inputs) == len(seen) == (4 if task == "pan-sharpening" else 1)
    for (x, y), (sx, sy) in zip(inputs, seen):
        assert np.array_equal(x, sx) and np.array_equal(y, sy)
        assert x.shape == y.shape == b.shape[:2] and x.dtype == y.dtype == np.float32
        if task != "pan-sharpening":  # bicubic upsampling may overshoot a little
            assert 0 <= min(x.min(), y.min()) and max(x.max(), y.max()) <= 255
