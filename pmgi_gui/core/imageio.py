"""Every image reader and writer of the project, with one error type (ImageError).

Readers return pixels as numpy arrays, H x W (gray) or H x W x C (RGB order for
colour), in the file's own dtype. Writers never replace a file unless asked to
and never write over a file named in ``protect`` (the sources of a fusion).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._atomic import atomic_write
from .errors import ImageError

__all__ = ["DEFAULT_MAX_PIXELS", "read_image", "write_image", "to_gray", "luma"]

DEFAULT_MAX_PIXELS = 100_000_000
_TIFF = {".tif", ".tiff"}
_WRITABLE = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"}


def _check_pixels(pixels: np.ndarray, path: Path, max_pixels: int) -> np.ndarray:
    if pixels is None or pixels.size == 0:
        raise ImageError(f"{path.name}: the image is empty")
    if pixels.ndim not in (2, 3):
        raise ImageError(f"{path.name}: unsupported image layout with shape {pixels.shape}")
    h, w = pixels.shape[:2]
    if h * w > max_pixels:
        raise ImageError(f"{path.name}: {w}x{h} is too large ({h * w / 1e6:.0f} megapixels; "
                         f"the limit is {max_pixels / 1e6:.0f})")
    if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
        raise ImageError(f"{path.name}: the image holds NaN or infinite values")
    return pixels


def read_image(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file; colour comes back in RGB order."""
    import cv2

    path = Path(path)
    if not path.exists():
        raise ImageError(f"file not found: {path}")
    if not path.is_file():
        raise ImageError(f"not a file: {path}")
    if path.suffix.lower() in _TIFF:
        import tifffile

        try:
            pixels = tifffile.imread(path)
        except Exception as exc:  # tifffile raises many types for damaged files
            raise ImageError(f"{path.name}: cannot read this TIFF file ({exc})") from None
        if pixels.ndim == 3 and pixels.shape[0] < pixels.shape[2] and pixels.shape[0] <= 16:
            pixels = np.moveaxis(pixels, 0, -1)  # planar (bands first) to H x W x C
        return _check_pixels(pixels, path, max_pixels)
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ImageError(f"{path.name}: the file is empty")
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ImageError(f"{path.name}: not a readable image (corrupt or unsupported format)")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = pixels[:, :, ::-1]
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, [2, 1, 0, 3]]
    return _check_pixels(np.ascontiguousarray(pixels), path, max_pixels)


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B, float32, in the input's units."""
    rgb = rgb.astype(np.float32)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """A float32 gray image in the file's units (luma for RGB, alpha dropped)."""
    if pixels.ndim == 2:
        return pixels.astype(np.float32)
    if pixels.shape[2] in (3, 4):
        return luma(pixels[:, :, :3])
    if pixels.shape[2] == 2:  # gray + alpha
        return pixels[:, :, 0].astype(np.float32)
    raise ImageError(f"cannot make a gray image of {pixels.shape[2]} bands")


def write_image(path: str | os.PathLike, pixels: np.ndarray, *, overwrite: bool = False,
                protect: tuple = ()) -> Path:
    """Write pixels (RGB order for colour) atomically: a temporary file, then a rename."""
    import cv2

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _WRITABLE:
        raise ImageError(f"cannot write {path.name}: use one of {', '.join(sorted(_WRITABLE))}")
    for src in protect:
        if src is not None and Path(src).exists() and path.exists() and path.samefile(src):
            raise ImageError(f"refusing to write over the source image {path}")
    if path.exists() and not overwrite:
        raise ImageError(f"{path} exists; choose another name or allow overwriting")
    if not path.parent.is_dir():
        raise ImageError(f"folder does not exist: {path.parent}")
    if suffix in _TIFF:
        import tifffile

        def encode(fh):
            tifffile.imwrite(fh, pixels, photometric="rgb" if pixels.ndim == 3 and pixels.shape[2] == 3
                             else "minisblack")
    else:
        px = pixels
        if px.ndim == 3 and px.shape[2] == 3:
            px = px[:, :, ::-1]
        ok, buf = cv2.imencode(suffix, np.ascontiguousarray(px))
        if not ok:
            raise ImageError(f"cannot encode {path.name} as {suffix}")

        def encode(fh):
            fh.write(buf.tobytes())
    try:
        atomic_write(path, encode)
    except OSError as exc:
        raise ImageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
