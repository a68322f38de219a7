"""The shipped demo pairs: regenerable from our own code, readable, valid for their task."""

from __future__ import annotations

import numpy as np
import pytest

from pmgi_gui.core import demo
from pmgi_gui.core.imageio import check_bands, read_source
from pmgi_gui.core.tasks import TASK_NAMES, get_task


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return demo.make_demo_pairs(out)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_shipped_pair_is_valid_for_its_task(task):
    a_path, b_path = demo.demo_pair(task)
    t = get_task(task)
    assert a_path.parent.name == task and (a_path.stem, b_path.stem) == (t.stem_a, t.stem_b)
    a, b = read_source(a_path), read_source(b_path)
    if task == "pan-sharpening":
        check_bands(a, range(3, 9), "multispectral")
        check_bands(b, 1, "panchromatic")
        assert a.dtype == b.dtype == np.uint16 and a.bands == 4
        assert b.size == (demo.PAN_RATIO * a.size[0], demo.PAN_RATIO * a.size[1])
        assert a.meta["band_names"] == list(demo.MS_BAND_NAMES)
        assert max(a.pixels.max(), b.pixels.max()) <= demo.PAN_MAX
    else:
        assert a.size == b.size and a.dtype == b.dtype == np.uint8
        assert all(256 <= n <= 512 for n in a.size)
    expected = {"ir-vis": ("gray", "gray"), "multi-exposure": ("rgb", "rgb"),
                "medical": ("rgb", "gray"), "multi-focus": ("rgb", "rgb"),
                "pan-sharpening": ("multiband", "gray")}[task]
    assert (a.kind, b.kind) == expected
    # Each image carries content, not a flat field.
    for src in (a, b):
        assert src.pixels.std() > 0.05 * src.pixels.max() > 0


def test_shipped_demo_is_small():
    total = sum(p.stat().st_size for p in demo.demo_dir().rglob("*") if p.is_file())
    assert total < 2_000_000


@pytest.mark.parametrize("task", TASK_NAMES)
def test_make_demo_pairs_reproduces_the_shipped_files(regenerated, task):
    for made, shipped in zip(regenerated[task], demo.demo_pair(task)):
        assert made.name == shipped.name
        m, s = read_source(made), read_source(shipped)
        assert (m.pixels.shape, m.dtype, m.kind) == (s.pixels.shape, s.dtype, s.kind)
        # Same recipe: the same picture, up to library rounding differences.
        corr = np.corrcoef(m.pixels.astype(float).ravel(), s.pixels.astype(float).ravel())[0, 1]
        assert corr > 0.99


def test_make_demo_pairs_is_deterministic_and_never_overwrites(tmp_path, regenerated):
    again = demo.make_demo_pairs(tmp_path)
    for task in TASK_NAMES:
        for p, q in zip(again[task], regenerated[task]):
            np.testing.assert_array_equal(read_source(p).pixels, read_source(q).pixels)
    from pmgi_gui.core.errors import ImageError

    with pytest.raises(ImageError, match="exists"):
        demo.make_demo_pairs(tmp_path)


def test_demo_pair_rejects_unknown_task():
    from pmgi_gui.core.errors import PmgiError

    with pytest.raises(PmgiError, match="unknown task"):
        demo.demo_pair("x-ray")
