"""`pmgi fuse` on good and bad input: one-line errors, non-zero exit, nothing written."""

import numpy as np
import pytest

from pmgi_gui.cli import main as pmgi
from pmgi_gui.core import imageio
from tests.helpers import random_checkpoint, scene


@pytest.fixture
def pair(tmp_path):
    a, b = tmp_path / "ir.png", tmp_path / "vis.png"
    imageio.write_image(a, scene(40, 56, 1))
    imageio.write_image(b, scene(40, 56, 2))
    return a, b


@pytest.fixture
def ckpt(tmp_path):
    return random_checkpoint(tmp_path / "ckpt", task="ir-vis", normalisation="batch")


def run(capsys, *args):
    code = pmgi([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return code, err


def test_fuse_writes_a_gray_image_of_the_source_size(tmp_path, pair, ckpt, capsys):
    out = tmp_path / "fused.png"
    code, err = run(capsys, "fuse", "--task", "ir-vis", *pair, "-o", out, "--checkpoint", ckpt.path)
    assert code == 0, err
    fused = imageio.read_image(out)
    assert fused.shape == (40, 56) and fused.dtype == np.uint8
    assert fused.std() > 0


def test_existing_output_is_kept_unless_overwrite(tmp_path, pair, ckpt, capsys):
    out = tmp_path / "fused.png"
    out.write_bytes(b"keep me")
    code, err = run(capsys, "fuse", "--task", "ir-vis", *pair, "-o", out, "--checkpoint", ckpt.path)
    assert code != 0 and "exists; pass --overwrite" in err
    assert out.read_bytes() == b"keep me"
    code, err = run(capsys, "fuse", "--task", "ir-vis", *pair, "-o", out, "--checkpoint", ckpt.path,
                    "--overwrite")
    assert code == 0 and imageio.read_image(out).shape == (40, 56)


def test_never_writes_over_a_source_even_with_overwrite(tmp_path, pair, ckpt, capsys):
    before = pair[0].read_bytes()
    code, err = run(capsys, "fuse", "--task", "ir-vis", *pair, "-o", pair[0], "--checkpoint",
                    ckpt.path, "--overwrite")
    assert code != 0 and "refusing to write over the source image" in err
    assert pair[0].read_bytes() == before


def _bad_case(name, tmp_path, pair, ckpt):
    a, b = pair
    if name == "missing file":
        return [tmp_path / "nope.png", b], ckpt.path, "file not found"
    if name == "corrupt file":
        bad = tmp_path / "bad.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
        return [bad, b], ckpt.path, "bad.png: not a readable image"
    if name == "different sizes":
        small = tmp_path / "small.png"
        imageio.write_image(small, scene(20, 30, 3))
        return [a, small], ckpt.path, "the infrared image is 56x40 but the visible image is 30x20"
    if name == "checkpoint for another task":
        other = random_checkpoint(tmp_path / "med", task="medical")
        return [a, b], other.path, "checkpoint med was made for task medical, not ir-vis"
    if name == "tampered checkpoint":
        w = ckpt.path / "model.safetensors"
        data = bytearray(w.read_bytes())
        data[100] ^= 1
        w.write_bytes(bytes(data))
        return [a, b], ckpt.path, "does not match the sha256 in its manifest"
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["missing file", "corrupt file", "different sizes",
                                  "checkpoint for another task", "tampered checkpoint"])
def test_bad_input_gives_one_line_error_and_writes_nothing(name, tmp_path, pair, ckpt, capsys):
    sources, checkpoint, message = _bad_case(name, tmp_path, pair, ckpt)
    out = tmp_path / "out" / "fused.png"
    out.parent.mkdir()
    code, err = run(capsys, "fuse", "--task", "ir-vis", *sources, "-o", out, "--checkpoint", checkpoint)
    assert code != 0
    assert err.startswith("pmgi: error: ") and len(err.splitlines()) == 1
    assert message in err
    assert list(out.parent.iterdir()) == []


def test_unknown_checkpoint_name_lists_what_is_there(tmp_path, pair, capsys, monkeypatch):
    monkeypatch.setenv("PMGI_USER_DIR", str(tmp_path / "user"))
    code, err = run(capsys, "fuse", "--task", "ir-vis", *pair, "-o", tmp_path / "f.png",
                    "--checkpoint", "no-such-name")
    assert code != 0 and "no checkpoint named 'no-such-name' for task ir-vis" in err


def test_pan_sharpening_geotiff_keeps_transform_crs_and_bit_depth(tmp_path, capsys):
    from affine import Affine

    from pmgi_gui.core.imageio import Georef, read_source

    rng = np.random.default_rng(0)
    ms = rng.integers(0, 2048, (16, 20, 4), dtype=np.uint16)
    pan = rng.integers(0, 2048, (64, 80), dtype=np.uint16)
    pan_geo = Georef(crs="EPSG:32633", transform=Affine(0.5, 0, 500000, 0, -0.5, 4200000))
    ms_geo = Georef(crs="EPSG:32633", transform=Affine(2.0, 0, 500000, 0, -2.0, 4200000))
    imageio.write_image(tmp_path / "ms.tif", ms, georef=ms_geo)
    imageio.write_image(tmp_path / "pan.tif", pan, georef=pan_geo)
    ckpt = random_checkpoint(tmp_path / "ck", task="pan-sharpening", normalisation="none")
    out = tmp_path / "fused.tif"
    code, err = run(capsys, "fuse", "--task", "pan-sharpening", tmp_path / "ms.tif", tmp_path / "pan.tif",
                    "-o", out, "--checkpoint", ckpt.path)
    assert code == 0, err
    fused = read_source(out)
    assert fused.pixels.shape == (64, 80, 4) and fused.pixels.dtype == np.uint16
    assert fused.georef is not None
    assert fused.georef.transform == pan_geo.transform  # the PAN grid
    assert "32633" in str(fused.georef.crs)


def test_demo_fuses_every_task_with_an_installed_checkpoint(tmp_path, capsys, monkeypatch):
    from pmgi_gui.core.tasks import TASK_NAMES

    monkeypatch.setenv("PMGI_USER_DIR", str(tmp_path / "user"))
    monkeypatch.setattr("pmgi_gui.paths.weights_dir", lambda: tmp_path / "no-shipped-weights")
    for task in TASK_NAMES:
        random_checkpoint(tmp_path / "user" / "checkpoints" / task / "paper", task=task)
    code, err = run(capsys, "fuse", "--demo", "-o", tmp_path / "demo")
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert names == ["ir-vis.png", "medical.png", "multi-exposure.png", "multi-focus.png",
                     "pan-sharpening.tif"]
    assert imageio.read_image(tmp_path / "demo" / "medical.png").shape[2] == 3
    assert imageio.read_image(tmp_path / "demo" / "pan-sharpening.tif").dtype == np.uint16
