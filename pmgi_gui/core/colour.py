"""Colour and band transforms used by the task pipelines (PMGI_REFERENCE.md,
"Colour and multi-band pipelines"). Arrays are float32; RGB is H x W x 3."""

from __future__ import annotations

import numpy as np

__all__ = [
    "rgb_to_ycbcr_studio", "ycbcr_studio_to_rgb", "rgb_to_ycbcr_full", "ycbcr_full_to_rgb",
    "fuse_chroma", "rgb_to_ihs", "ihs_to_rgb", "PET_COLORMAPS", "apply_colormap",
    "upsample_bicubic", "match_base_histogram", "as_unit255",
]

# Studio-range BT.601 YCbCr as the released MATLAB scripts use it (multi-exposure).
_STUDIO = np.array([[0.257, 0.564, 0.098], [-0.148, -0.291, 0.439], [0.439, -0.368, -0.071]],
                   np.float32)
_STUDIO_OFFSET = np.array([16, 128, 128], np.float32)


def rgb_to_ycbcr_studio(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ _STUDIO.T + _STUDIO_OFFSET


def ycbcr_studio_to_rgb(ycc: np.ndarray) -> np.ndarray:
    y, cb, cr = ycc[..., 0] - 16, ycc[..., 1] - 128, ycc[..., 2] - 128
    return np.stack([1.164 * y + 1.596 * cr,
                     1.164 * y - 0.392 * cb - 0.813 * cr,
                     1.164 * y + 2.017 * cb], axis=-1).astype(np.float32)


# Full-range (JFIF) BT.601 YCbCr: Y is the ordinary luma, so a gray network fed
# with luma (ir-vis, multi-focus) gets its colour back unchanged.
_FULL = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
                 np.float32)


def rgb_to_ycbcr_full(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ _FULL.T + np.array([0, 128, 128], np.float32)


def ycbcr_full_to_rgb(ycc: np.ndarray) -> np.ndarray:
    y, cb, cr = ycc[..., 0], ycc[..., 1] - 128, ycc[..., 2] - 128
    return np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb],
                    axis=-1).astype(np.float32)


def fuse_chroma(c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """(C1 |C1-128| + C2 |C2-128|) / (|C1-128| + |C2-128|), 128 where both are 128:
    the more saturated source dominates (the released multi-exposure rule)."""
    w1, w2 = np.abs(c1 - 128), np.abs(c2 - 128)
    den = w1 + w2
    safe = np.where(den > 0, den, 1)
    return np.where(den > 0, (c1 * w1 + c2 * w2) / safe, 128).astype(np.float32)


_S3, _S6, _S2 = np.sqrt(3.0), np.sqrt(6.0), np.sqrt(2.0)


def rgb_to_ihs(rgb01: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear IHS of RGB in [0, 1]: I = (R+G+B)/sqrt3 in [0, sqrt3],
    v1 = (R+G-2B)/sqrt6, v2 = (R-G)/sqrt2."""
    r, g, b = rgb01[..., 0], rgb01[..., 1], rgb01[..., 2]
    return (r + g + b) / _S3, (r + g - 2 * b) / _S6, (r - g) / _S2


def ihs_to_rgb(i: np.ndarray, v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """Exact inverse of :func:`rgb_to_ihs` (the transform is orthonormal)."""
    r = i / _S3 + v1 / _S6 + v2 / _S2
    g = i / _S3 + v1 / _S6 - v2 / _S2
    b = i / _S3 - 2 * v1 / _S6
    return np.stack([r, g, b], axis=-1).astype(np.float32)


PET_COLORMAPS = ("hot", "inferno", "jet", "rainbow", "gray")


def apply_colormap(gray_u8: np.ndarray, name: str = "hot") -> np.ndarray:
    """A gray PET (as it comes from a scanner) in a PET colour map, RGB uint8."""
    import cv2

    if name not in PET_COLORMAPS:
        raise ValueError(f"unknown colour map {name!r}; choose one of {', '.join(PET_COLORMAPS)}")
    if name == "gray":
        return np.repeat(gray_u8[..., None], 3, axis=2)
    code = {"hot": cv2.COLORMAP_HOT, "inferno": cv2.COLORMAP_INFERNO, "jet": cv2.COLORMAP_JET,
            "rainbow": cv2.COLORMAP_RAINBOW}[name]
    return cv2.applyColorMap(np.ascontiguousarray(gray_u8), code)[:, :, ::-1].copy()


def upsample_bicubic(ms: np.ndarray, ratio: int = 4) -> np.ndarray:
    """Each band of an H x W x N image resized bicubically by ``ratio``, float32."""
    import cv2

    h, w = ms.shape[:2]
    ms = ms.astype(np.float32)
    bands = [cv2.resize(ms[..., k], (w * ratio, h * ratio), interpolation=cv2.INTER_CUBIC)
             for k in range(ms.shape[2])]
    return np.stack(bands, axis=-1)


def match_base_histogram(band: np.ndarray, low_res_band: np.ndarray) -> np.ndarray:
    """The released pan-sharpening post-step: base = 3x3 Gaussian blur (replicate
    border; sigma 0.5, MATLAB fspecial's default), detail = band - base, result =
    base histogram-matched to the low-resolution MS band + detail."""
    import cv2
    from skimage.exposure import match_histograms

    band = band.astype(np.float32)
    base = cv2.GaussianBlur(band, (3, 3), 0.5, borderType=cv2.BORDER_REPLICATE)
    matched = match_histograms(base, low_res_band.astype(np.float32))
    return (matched + (band - base)).astype(np.float32)


def as_unit255(pixels: np.ndarray) -> np.ndarray:
    """Gray values for the network: 8-bit data as it is, anything else (16-bit,
    float, DICOM units) min-max scaled to 0..255 over all its channels."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32)
    p = pixels.astype(np.float64)
    lo, hi = float(p.min()), float(p.max())
    if hi <= lo:
        return np.zeros(p.shape, np.float32)
    return ((p - lo) * (255.0 / (hi - lo))).astype(np.float32)
