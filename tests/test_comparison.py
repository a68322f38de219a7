"""core.comparison: what the window shows, checked by hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from pmgi_gui.core import comparison as cmp


def test_to_display_keeps_8_bit_and_scales_the_rest():
    g = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(cmp.to_display(g), g)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 2] = 9
    assert cmp.to_display(rgba).shape == (2, 2, 3) and cmp.to_display(rgba)[0, 0, 2] == 9
    x = np.array([[0, 1000], [2000, 4000]], np.uint16)
    assert cmp.to_display(x, peak=2000).tolist() == [[0, 128], [255, 255]]


def test_spectral_bands_show_in_natural_colour():
    ms = np.zeros((2, 2, 4), np.uint16)
    ms[..., 0], ms[..., 1], ms[..., 2], ms[..., 3] = 100, 200, 300, 400  # B, G, R, NIR
    rgb = cmp.to_display(ms, peak=300, spectral=True)
    assert rgb[0, 0].tolist() == [255, 170, 85]
    # Views wrap a C-ordered picture as it is; any other one they copy at every redraw.
    assert rgb.flags.c_contiguous


def test_display_peak_ignores_a_few_hot_pixels():
    x = np.full((100, 100), 1000, np.uint16)
    x[0, 0] = 65535
    assert cmp.display_peak(x) == pytest.approx(1000)


def test_on_fused_grid_upsamples_ms_only():
    ms = np.full((4, 5, 3), 7, np.uint8)
    assert cmp.on_fused_grid("pan-sharpening", ms).shape == (16, 20, 3)
    assert cmp.on_fused_grid("pan-sharpening", ms).dtype == np.uint8
    assert cmp.on_fused_grid("ir-vis", ms) is ms


def test_swipe_difference_and_blend():
    left = np.full((2, 4), 10, np.uint8)
    right = np.full((2, 4), 200, np.uint8)
    assert cmp.swipe(left, right, 1.4)[0].tolist() == [10, 200, 200, 200]
    assert cmp.swipe(left, right, 99)[0].tolist() == [10] * 4
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[..., 1] = 50
    d = cmp.absolute_difference(left, rgb)
    assert d.dtype == np.uint8 and d.tolist() == [[40] * 4] * 2  # largest channel difference
    blend = cmp.opacity_blend(rgb, left, 0.25)
    assert blend[0, 0].tolist() == [8, 20, 8]  # 0.25*(0,50,0) + 0.75*(10,10,10)
    with pytest.raises(ValueError):
        cmp.swipe(left, np.zeros((3, 4), np.uint8), 1)


@pytest.mark.parametrize("shapes", [((6, 7), (6, 7)), ((6, 7, 3), (6, 7, 3)), ((6, 7), (6, 7, 3)),
                                    ((6, 7, 3), (6, 7))])
def test_absolute_difference_is_the_largest_channel_difference(shapes):
    # Against the plain definition in wide integers (the function stays in uint8).
    rng = np.random.default_rng(0)
    x, y = (rng.integers(0, 256, s, dtype=np.uint8) for s in shapes)
    wide = [np.broadcast_to((z if z.ndim == 3 else z[..., None]).astype(int), (6, 7, 3)) for z in (x, y)]
    expected = np.abs(wide[0] - wide[1]).max(axis=2)
    d = cmp.absolute_difference(x, y)
    assert d.dtype == np.uint8 and np.array_equal(d, expected)
