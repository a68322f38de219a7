"""Looking at fusion results: images for display and the comparisons the window
offers (swipe, absolute difference, opacity blend). Metrics read their own inputs
(``evaluation.score``).

Everything here is plain numpy so the window, the report exporter and the tests
share one definition of what is shown. Display images are uint8, H x W (gray) or
H x W x 3 (RGB). Pan-sharpening sources and results are brought to the PAN grid so
that all three views share one coordinate system.
"""

from __future__ import annotations

import numpy as np

from .tasks import PAN_RATIO, get_task

__all__ = ["display_peak", "to_display", "task_display", "on_fused_grid", "absolute_difference",
           "swipe", "opacity_blend", "RGB_BANDS"]

# Multispectral band order of the shared data (IKONOS, QuickBird): blue, green, red,
# near infrared. Natural colour shows bands 3, 2, 1 (0-based 2, 1, 0).
RGB_BANDS = (2, 1, 0)


def display_peak(*images: np.ndarray) -> float:
    """One value that maps to white for all ``images`` (non-8-bit data).

    The 99.8th percentile, not the maximum, so that a few hot pixels of 11- or
    16-bit data do not leave the picture dark. One peak for a pair keeps the
    sources and the fused image comparable.
    """
    peaks = [float(np.percentile(x, 99.8)) for x in images if x is not None and x.size]
    peak = max(peaks, default=255.0)
    return peak if peak > 0 else 1.0


def to_display(pixels: np.ndarray, peak: float | None = None, *,
               spectral: bool = False) -> np.ndarray:
    """A uint8 gray or RGB picture of ``pixels`` (any dtype, 1..N bands).

    uint8 data are shown as they are; other data are scaled so that ``peak`` (by
    default :func:`display_peak` of the image itself) is white. A fourth band is
    alpha and dropped, unless the image is ``spectral`` (multispectral bands), or
    has more than four bands: then :data:`RGB_BANDS` make natural colour.
    """
    x = pixels
    if x.ndim == 3:
        n = x.shape[2]
        if n == 1:
            x = x[..., 0]
        elif n == 2:  # gray + alpha
            x = x[..., 0]
        elif n == 3:
            pass
        elif n == 4 and not spectral:
            x = x[..., :3]  # RGBA picture
        else:
            x = x[..., list(RGB_BANDS)]
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if peak is None:
        peak = display_peak(x)
    y = x.astype(np.float32) * (255.0 / peak)
    # C order: picking bands leaves the array strided, and a view would copy it (48 MB
    # at 16 megapixels, ~100 ms) on the GUI thread at every redraw.
    return np.ascontiguousarray(np.clip(np.rint(y), 0, 255).astype(np.uint8))


def task_display(task: str, pixels: np.ndarray, peak: float | None = None) -> np.ndarray:
    """The picture of one of ``task``'s images: pan-sharpening bands in natural colour,
    scaled by the pair's ``peak`` (:func:`display_peak` of MS and PAN) so that sources and
    results compare; any other task's image as :func:`to_display` gives it."""
    spectral = get_task(task).name == "pan-sharpening"
    return to_display(pixels, peak if spectral else None, spectral=spectral)


def on_fused_grid(task: str, a: np.ndarray) -> np.ndarray:
    """Source A where the fused image lives: the multispectral image upsampled
    x4 (as the pipeline does) for pan-sharpening, A itself otherwise."""
    if get_task(task).name != "pan-sharpening":
        return a
    from .colour import upsample_bicubic

    up = upsample_bicubic(a, PAN_RATIO)
    if np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        return np.clip(np.rint(up), info.min, info.max).astype(a.dtype)
    return up.astype(a.dtype)


def _rgb(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x


def _same_layout(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.shape[:2] != y.shape[:2]:
        raise ValueError(f"images differ in size: {x.shape[:2]} and {y.shape[:2]}")
    if x.ndim != y.ndim:
        x, y = _rgb(x), _rgb(y)
    return x, y


def absolute_difference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|x - y| of two display images as one uint8 gray image (largest channel)."""
    if x.shape[:2] != y.shape[:2]:
        raise ValueError(f"images differ in size: {x.shape[:2]} and {y.shape[:2]}")
    if x.dtype == y.dtype == np.uint8:
        # The window computes this on the GUI thread when it switches to the view: one
        # channel at a time, max - min in uint8, no widened or RGB-expanded copies
        # (16 megapixels: ~0.1-0.4 s -> ~10 ms gray, ~60 ms colour).
        channels = max(1 if z.ndim == 2 else z.shape[2] for z in (x, y))
        out, low = None, None
        for i in range(channels):
            xi, yi = (z if z.ndim == 2 else z[..., i] for z in (x, y))
            d = np.maximum(xi, yi)
            low = np.minimum(xi, yi, out=low)
            d -= low
            out = d if out is None else np.maximum(out, d, out=out)
        return out
    x, y = _same_layout(x, y)
    d = np.abs(x.astype(np.int16) - y.astype(np.int16))
    if d.ndim == 3:
        d = d.max(axis=2)
    return d.astype(np.uint8)


def swipe(left: np.ndarray, right: np.ndarray, column: float) -> np.ndarray:
    """``left`` up to ``column`` (pixels from the left edge), ``right`` beyond it."""
    left, right = _same_layout(left, right)
    c = int(np.clip(round(column), 0, left.shape[1]))
    out = right.copy()
    out[:, :c] = left[:, :c]
    return out


def opacity_blend(top: np.ndarray, bottom: np.ndarray, opacity: float) -> np.ndarray:
    """``top`` laid over ``bottom`` with ``opacity`` in [0, 1]: the linear blend a
    radiologist's viewer shows (PET over MRI), as uint8 RGB."""
    top, bottom = _rgb(top).astype(np.float32), _rgb(bottom).astype(np.float32)
    if top.shape != bottom.shape:
        raise ValueError(f"images differ in size: {top.shape[:2]} and {bottom.shape[:2]}")
    a = float(np.clip(opacity, 0.0, 1.0))
    return np.clip(np.rint(a * top + (1.0 - a) * bottom), 0, 255).astype(np.uint8)
