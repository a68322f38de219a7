"""Every image reader and writer of the project, with one error type (ImageError).

Readers return pixels as numpy arrays, H x W (gray) or H x W x C (RGB order for
colour, bands last for multispectral), in the file's own dtype; DICOM comes back as
float32 in the file's real units (rescale slope and intercept applied). Every reader
checks the image size from the file's header before decoding anything, so a small
file that claims a huge image (a decompression bomb) is refused cheaply.

Writers never replace a file unless asked to, never write over a file named in
``protect`` (the sources of a fusion), write atomically (a temporary file, then a
rename) and refuse a dtype or band count the format cannot hold.

Supported: PNG (8/16-bit), JPEG, BMP, TIFF (8/16/32-bit integers, float, up to
MAX_BANDS bands), GeoTIFF (georeferencing kept through ``Georef``) and single-slice
DICOM.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ._atomic import atomic_write
from .errors import ImageError

__all__ = [
    "DEFAULT_MAX_PIXELS", "MAX_BANDS", "READABLE_SUFFIXES", "WRITABLE_SUFFIXES",
    "Georef", "Source", "read_source", "read_image", "write_image", "check_bands",
    "window_to_uint8", "to_gray", "luma",
]

DEFAULT_MAX_PIXELS = 100_000_000
# More bands than this is a hyperspectral cube or a stack of slices, not an image this
# application fuses; refusing it early also bounds the memory a header can ask for.
MAX_BANDS = 16

_SUFFIX_FORMAT = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP",
    ".tif": "TIFF", ".tiff": "TIFF", ".dcm": "DICOM", ".dicom": "DICOM",
}
READABLE_SUFFIXES = tuple(_SUFFIX_FORMAT)
WRITABLE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),  # classic TIFF, both byte orders
    (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"),  # BigTIFF
    (b"BM", "BMP"),
)
# Recognised only to name them in the error message.
_FOREIGN_MAGIC = (
    (b"GIF8", "GIF"), (b"RIFF", "RIFF (WebP, AVI, WAV)"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xffO\xffQ", "JPEG 2000"), (b"%PDF", "PDF"), (b"PK\x03\x04", "ZIP"),
    (b"\x1f\x8b", "gzip"), (b"8BPS", "Photoshop"),
)
_GEOTIFF_TAGS = (33550, 33922, 34264, 34735)  # pixel scale, tie point, transformation, geokeys
_SUPPORTED_DTYPES = {np.dtype(t) for t in ("u1", "i1", "u2", "i2", "u4", "i4", "f2", "f4", "f8")}
_SUPPORTED_NAMES = "8/16/32-bit integers or 16/32/64-bit floating point"

_FORMATS_HELP = "PMGI Fusion Studio reads PNG, JPEG, BMP, TIFF/GeoTIFF and DICOM"


@dataclass(frozen=True)
class Georef:
    """Where a raster lies on the Earth: what a GeoTIFF output must keep.

    crs: the coordinate reference system as rasterio writes it ("EPSG:32633", or WKT
    when it has no authority code), None when the file has a transform but no CRS.
    transform: the affine pixel-to-map transform (``affine.Affine``).
    nodata: the value marking missing pixels, if the file declares one.
    """

    crs: str | None
    transform: Any
    nodata: float | None = None


@dataclass(frozen=True, eq=False)
class Source:
    """One image as read from a file, with what the pipelines need to know about it.

    pixels: H x W, or H x W x C (RGB order for colour, bands last), native dtype
        (float32 in real units for DICOM).
    kind: "gray", "rgb" or "multiband" (the colour channels; an alpha channel, when
        ``alpha`` is True, is the last channel and not counted in ``kind``).
    format: "PNG", "JPEG", "BMP", "TIFF", "GeoTIFF" or "DICOM".
    bit_depth: significant bits per sample in the file (1, 8, 11, 12, 16, 32, ...).
    meta: what else the file says that matters for display or provenance, e.g. the
        DICOM "window" (center, width), "photometric", "rescale" (slope, intercept),
        "units", "modality"; a TIFF's "band_names"; "exif_orientation" for JPEG.
    """

    pixels: np.ndarray
    path: Path
    kind: str
    format: str
    bit_depth: int
    alpha: bool = False
    georef: Georef | None = None
    meta: dict = field(default_factory=dict)

    @property
    def dtype(self) -> np.dtype:
        return self.pixels.dtype

    @property
    def bands(self) -> int:
        """Number of channels, alpha included."""
        return 1 if self.pixels.ndim == 2 else self.pixels.shape[2]

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.pixels.shape[0], self.pixels.shape[1]


# ---------------------------------------------------------------------------- reading

def read_image(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file and return only its pixels (see ``read_source``)."""
    return read_source(path, max_pixels=max_pixels).pixels


def read_source(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Source:
    """Read an image file with its georeferencing and metadata.

    The format is recognised from the file's content (a PNG named .jpg is still read),
    falling back on the suffix for DICOM files without the standard preamble. Raises
    ImageError, and only ImageError, with a message meant for the user.
    """
    path = Path(path)
    if not isinstance(max_pixels, (int, np.integer)) or max_pixels <= 0:
        raise ImageError(f"the pixel limit must be a positive whole number, got {max_pixels!r}")
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageError(f"file not found: {path}") from None
    except OSError as exc:
        raise ImageError(f"cannot open {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(f"{path} is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{path} is not a regular file")
    if st.st_size == 0:
        raise ImageError(f"{path.name}: the file is empty (0 bytes)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise ImageError(f"{path.name}: cannot read the file ({exc.strerror or exc})") from None

    fmt = _identify(path, head)
    try:
        return _validated(_READERS[fmt](path, head, int(max_pixels)))
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"{path.name}: not enough memory to read this image") from None
    except Exception as exc:  # decoders raise many types for damaged input
        raise _damaged(path, fmt, _brief(exc)) from None


def _identify(path: Path, head: bytes) -> str:
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head[128:132] == b"DICM":
        return "DICOM"
    suffix = path.suffix.lower()
    expected = _SUFFIX_FORMAT.get(suffix)
    if expected == "DICOM":
        return "DICOM"  # a DICOM file may lack the preamble; pydicom is asked to try
    for magic, name in _FOREIGN_MAGIC:
        if head.startswith(magic):
            raise ImageError(f"{path.name}: unsupported format ({name}); {_FORMATS_HELP}")
    if expected:
        raise ImageError(f"{path.name}: not a valid {expected} file (the content is damaged, "
                         f"or it is another kind of file named {suffix})")
    shown = f"'{suffix}'" if suffix else "without a suffix"
    raise ImageError(f"{path.name}: unsupported file format ({shown}); {_FORMATS_HELP}")


def _damaged(path: Path, fmt: str, detail: str) -> ImageError:
    return ImageError(f"{path.name}: not a readable image: the {fmt} file is damaged or "
                      f"truncated ({detail})")


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _check_size(path: Path, height: int, width: int, max_pixels: int, bands: int = 1) -> None:
    """Refuse an image by its header: empty, over the pixel limit, too many bands."""
    if height <= 0 or width <= 0 or bands <= 0:
        raise ImageError(f"{path.name}: the image is empty ({width} x {height} pixels)")
    if height * width > max_pixels:
        raise ImageError(f"{path.name}: the image is too large: {width} x {height} pixels "
                         f"({height * width / 1e6:,.1f} megapixels; the limit is "
                         f"{max_pixels / 1e6:,.1f} megapixels)")
    if bands > MAX_BANDS:
        raise ImageError(f"{path.name}: the image has {bands} bands; at most {MAX_BANDS} "
                         f"are supported")


def _dtype_problem(dtype: np.dtype) -> str | None:
    """Why a sample type is not supported, or None."""
    if dtype.newbyteorder("=") in _SUPPORTED_DTYPES:
        return None
    kinds = {"c": "complex numbers", "b": "true/false values", "O": "Python objects",
             "U": "text", "S": "bytes", "V": "structured records", "M": "dates", "m": "durations"}
    what = kinds.get(dtype.kind, f"{dtype.itemsize * 8}-bit integers" if dtype.kind in "iu"
                     else str(dtype))
    return f"unsupported sample type {dtype} ({what}); images must hold {_SUPPORTED_NAMES}"


def _validated(src: Source) -> Source:
    """The checks every reader's output passes, whatever the format."""
    px, name = src.pixels, src.path.name
    if not isinstance(px, np.ndarray) or px.size == 0:
        raise ImageError(f"{name}: the image is empty")
    if px.ndim == 3 and px.shape[2] == 1:
        px = px[:, :, 0]
    if px.ndim not in (2, 3):
        raise ImageError(f"{name}: unsupported image layout with shape {px.shape}")
    problem = _dtype_problem(px.dtype)
    if problem:
        raise ImageError(f"{name}: {problem}")
    if not px.dtype.isnative:
        px = px.astype(px.dtype.newbyteorder("="))
    if px.dtype.kind == "f":
        bad = int(px.size - np.count_nonzero(np.isfinite(px)))
        if bad:
            raise ImageError(f"{name}: the image holds {bad:,} NaN or infinite value"
                             f"{'s' if bad > 1 else ''}; replace them before fusing")
    px = np.ascontiguousarray(px)
    if px is src.pixels:
        return src
    return Source(px, src.path, src.kind, src.format, src.bit_depth, src.alpha, src.georef,
                  src.meta)


def _kind(channels: int, alpha: bool, rgb: bool) -> str:
    colour = channels - (1 if alpha else 0)
    if colour == 1:
        return "gray"
    if colour == 3 and rgb:
        return "rgb"
    return "multiband"


# PNG, JPEG, BMP: Pillow reads the header (size) lazily, so the size is checked before
# any pixel is decoded. The plugin classes are used directly rather than Image.open,
# whose own decompression-bomb check uses a process-wide limit, not this call's.

def _read_raster(path: Path, head: bytes, max_pixels: int) -> Source:
    from PIL import BmpImagePlugin, ImageOps, JpegImagePlugin, PngImagePlugin

    fmt = next(f for m, f in _MAGIC if head.startswith(m))
    plugin = {"PNG": PngImagePlugin.PngImageFile, "JPEG": JpegImagePlugin.JpegImageFile,
              "BMP": BmpImagePlugin.BmpImageFile}[fmt]
    meta: dict = {}
    if fmt == "PNG" and head[12:16] == b"IHDR":
        # Pillow does not recognise a PNG of zero size at all; say what is wrong.
        width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        _check_size(path, height, width, max_pixels)
    with open(path, "rb") as fh:
        width, height = plugin(fh).size  # the header only
    _check_size(path, height, width, max_pixels)
    if fmt == "PNG" and head[12:16] == b"IHDR":
        bit_depth, colour_type = head[24], head[25]
        if bit_depth == 16 and colour_type in (2, 4, 6):
            # Pillow would reduce 16-bit colour to 8 bits; OpenCV keeps all 16.
            return _read_png16_colour(path, height, width)
    else:
        bit_depth = 8
    # Decoded from memory: Pillow skips the rest of a PNG's image data with
    # fp.read(length), and a damaged 4 GB length would reserve 4 GB from a file object,
    # while a BytesIO hands back only what is there.
    im = plugin(io.BytesIO(path.read_bytes()))
    im.load()
    if fmt == "JPEG":
        orientation = im.getexif().get(0x0112)
        if orientation and orientation != 1:
            # What every viewer shows; both sources of a pair get the same treatment.
            im = ImageOps.exif_transpose(im)
            meta["exif_orientation"] = int(orientation)
    pixels, alpha, rgb = _from_pil(im, path)
    if fmt == "PNG" and head[25] == 3:
        bit_depth = 8  # palette entries are 8-bit colours whatever the index depth
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    return Source(pixels, path, _kind(channels, alpha, rgb), fmt, int(bit_depth), alpha,
                  None, meta)


def _from_pil(im, path: Path) -> tuple[np.ndarray, bool, bool]:
    """Pixels of a loaded Pillow image: (array, has alpha, is colour)."""
    mode = im.mode
    if mode == "P" or mode == "PA":
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode == "1":
        im = im.convert("L")  # 0/255, not true/false
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im = im.convert("RGB")
    elif mode == "I":
        # 16-bit gray PNGs in some Pillow versions; the values fit in uint16.
        arr = np.asarray(im)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ImageError(f"{path.name}: unsupported 32-bit integer image")
        return arr.astype(np.uint16), False, False
    mode = im.mode
    if mode not in ("L", "LA", "RGB", "RGBA", "I;16", "I;16L", "I;16B", "F"):
        raise ImageError(f"{path.name}: unsupported pixel mode {mode}")
    arr = np.array(im)
    return arr, mode in ("LA", "RGBA"), mode in ("RGB", "RGBA")


def _png_structure_problem(data: bytes) -> str | None:
    """Why a PNG's chunk structure is broken (lengths, CRCs, IEND), or None."""
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        end = pos + 12 + length
        if end > len(data):
            return "truncated"
        kind = data[pos + 4:pos + 8]
        if zlib.crc32(data[pos + 4:end - 4]) != int.from_bytes(data[end - 4:end], "big"):
            return f"checksum error in a {kind.decode('latin-1')!r} chunk"
        if kind == b"IEND":
            return None
        pos = end
    return "truncated"


def _read_png16_colour(path: Path, height: int, width: int) -> Source:
    import cv2

    # OpenCV can spend seconds on a damaged PNG (a chunk length past the end of the
    # file); a structural check first keeps damaged files cheap to refuse.
    data = path.read_bytes()
    problem = _png_structure_problem(data)
    if problem:
        raise _damaged(path, "PNG", problem)
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise _damaged(path, "PNG", "the decoder gave up")
    if pixels.shape[:2] != (height, width):
        raise ImageError(f"{path.name}: the PNG file is inconsistent (header and data disagree)")
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = pixels[:, :, ::-1]
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, [2, 1, 0, 3]]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    alpha = channels in (2, 4)
    return Source(np.ascontiguousarray(pixels), path, _kind(channels, alpha, channels >= 3),
                  "PNG", 16, alpha, None, {})


# TIFF: tifffile for plain TIFF (any dtype, any band count); rasterio for GeoTIFF and
# for compressions tifffile cannot decode without the optional imagecodecs package.

def _read_tiff(path: Path, head: bytes, max_pixels: int) -> Source:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.pages or not tif.series:
            raise ImageError(f"{path.name}: the TIFF file holds no image")
        page = tif.pages[0]
        if any(code in page.tags for code in _GEOTIFF_TAGS):
            geo = True
        else:
            geo = False
            series = tif.series[0]
            height, width, band_axis, bands = _tiff_layout(path, series.shape, series.axes)
            _check_size(path, height, width, max_pixels, bands)
            problem = None if series.dtype == bool else _dtype_problem(series.dtype)
            if problem:  # known from the header: no need to decode
                raise ImageError(f"{path.name}: {problem}")
            # tifffile reads each strip or tile with one read(bytecount): a damaged count
            # would reserve gigabytes before finding the file too short.
            size = tif.filehandle.size
            for p in series.pages:
                segments = zip(p.dataoffsets, p.databytecounts) if p is not None else ()
                if any(offset + count > size for offset, count in segments):
                    raise _damaged(path, "TIFF", "image data past the end of the file")
            try:
                pixels = series.asarray()
            except (ValueError, KeyError, NotImplementedError) as exc:
                if "imagecodecs" not in str(exc):
                    raise
                geo = None  # a compression only GDAL decodes here
            else:
                return _tiff_source(path, tif, page, pixels.reshape(series.shape), band_axis,
                                    series.axes)
    return _read_rasterio(path, max_pixels, "GeoTIFF" if geo else "TIFF")


def _tiff_layout(path: Path, shape: tuple, axes: str) -> tuple[int, int, int | None, int]:
    """(height, width, index of the band axis or None, bands) of a tifffile series."""
    if "Y" not in axes or "X" not in axes:
        raise ImageError(f"{path.name}: unsupported TIFF layout (axes {axes})")
    others = [(i, ax, n) for i, (ax, n) in enumerate(zip(axes, shape)) if ax not in "YX" and n != 1]
    if len(others) > 1:
        raise ImageError(f"{path.name}: the TIFF file holds a stack of images (shape {shape}); "
                         f"open a single image")
    band_axis, bands = None, 1
    if others:
        band_axis, ax, bands = others[0]
        if ax in "ZT":
            what = "slices" if ax == "Z" else "time points"
            raise ImageError(f"{path.name}: the TIFF file holds {bands} {what}; "
                             f"open a single image")
    return shape[axes.index("Y")], shape[axes.index("X")], band_axis, bands


def _tiff_source(path, tif, page, pixels: np.ndarray, band_axis, axes: str) -> Source:
    from tifffile import PHOTOMETRIC

    # Drop the axes of length 1 and order what is left as Y, X (, bands).
    order = [axes.index("Y"), axes.index("X")] + ([band_axis] if band_axis is not None else [])
    pixels = pixels.transpose(order + [i for i in range(pixels.ndim) if i not in order])
    pixels = pixels.reshape(pixels.shape[:len(order)])
    photometric = page.photometric
    bit_depth = int(page.bitspersample)
    meta: dict = {"photometric": getattr(photometric, "name", str(photometric))}
    if photometric == PHOTOMETRIC.PALETTE and page.colormap is not None and pixels.ndim == 2:
        cmap = np.asarray(page.colormap)
        if pixels.dtype.kind not in "u" or int(pixels.max(initial=0)) >= cmap.shape[1]:
            raise ImageError(f"{path.name}: the palette TIFF refers to colours it does not define")
        rgb = cmap[:, pixels].transpose(1, 2, 0)
        if cmap.max() > 255:
            rgb = (rgb // 257).astype(np.uint8)
        return Source(rgb.astype(np.uint8), path, "rgb", "TIFF", 8, False, None, meta)
    if pixels.dtype == bool:
        inv = photometric == PHOTOMETRIC.MINISWHITE
        pixels = np.where(pixels != inv, np.uint8(255), np.uint8(0))
    elif photometric == PHOTOMETRIC.MINISWHITE and pixels.dtype.kind == "u":
        # 0 means white: flip so that larger values are brighter, as everywhere else.
        pixels = (min(2 ** bit_depth - 1, np.iinfo(pixels.dtype).max) - pixels).astype(pixels.dtype)
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    extras = tuple(page.extrasamples or ())
    alpha = channels in (2, 4) and bool(extras) and int(extras[-1]) in (1, 2)
    names = _tiff_band_names(tif)
    if names and len(names) == channels:
        meta["band_names"] = names
    rgb = photometric == PHOTOMETRIC.RGB
    return Source(pixels, path, _kind(channels, alpha, rgb), "TIFF", bit_depth, alpha, None, meta)


def _tiff_band_names(tif) -> list[str] | None:
    try:
        shaped = tif.shaped_metadata
        if shaped:
            names = shaped[0].get("band_names")
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                return names
    except Exception:  # metadata is a bonus; a damaged description must not stop reading
        return None
    return None


def _read_rasterio(path: Path, max_pixels: int, fmt: str) -> Source:
    import rasterio
    from rasterio.enums import ColorInterp
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            _check_size(path, ds.height, ds.width, max_pixels, ds.count)
            dtypes = set(ds.dtypes)
            if len(dtypes) != 1:
                raise ImageError(f"{path.name}: the bands have different sample types "
                                 f"({', '.join(sorted(dtypes))})")
            problem = _dtype_problem(np.dtype(dtypes.pop()))
            if problem:
                raise ImageError(f"{path.name}: {problem}")
            data = ds.read()
            interp = tuple(ds.colorinterp)
            crs, transform, nodata = ds.crs, ds.transform, ds.nodata
            names = list(ds.descriptions)
            nbits = ds.tags(1, "IMAGE_STRUCTURE").get("NBITS")  # e.g. 12 of 16
            bit_depth = int(nbits) if nbits else np.dtype(ds.dtypes[0]).itemsize * 8
    pixels = data[0] if data.shape[0] == 1 else np.moveaxis(data, 0, -1)
    channels = data.shape[0]
    alpha = channels in (2, 4) and interp[-1] == ColorInterp.alpha
    rgb = interp[:3] == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
    georef = None
    if crs is not None or not transform.is_identity:
        georef = Georef(crs.to_string() if crs is not None else None, transform,
                        None if nodata is None else float(nodata))
    meta: dict = {"color_interpretation": [c.name for c in interp]}
    if all(isinstance(n, str) and n for n in names):
        meta["band_names"] = names
    return Source(pixels, path, _kind(channels, alpha, rgb), "GeoTIFF" if georef else fmt,
                  bit_depth, alpha, georef, meta)


# DICOM: the header (Rows, Columns, frames) is checked before the pixel data is decoded.

def _read_dicom(path: Path, head: bytes, max_pixels: int) -> Source:
    import pydicom
    from pydicom.errors import InvalidDicomError

    has_preamble = head[128:132] == b"DICM"
    # From memory, not from the file: pydicom reads an element with fp.read(length),
    # and a damaged length of 4 GB would reserve 4 GB from a file object, while a
    # BytesIO hands back only what is there. A single slice is small; its pixels are
    # read in full anyway.
    data = path.read_bytes()
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=not has_preamble)
    except InvalidDicomError:
        raise ImageError(f"{path.name}: not a valid DICOM file") from None
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageError(f"{path.name}: the DICOM file holds no image (no pixel data)")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    _check_size(path, rows, cols, max_pixels, samples)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageError(f"{path.name}: the DICOM file holds {frames} frames; open a "
                         f"single-slice DICOM (one image per file)")
    meta_ts = getattr(ds, "file_meta", None)
    if meta_ts is None or "TransferSyntaxUID" not in meta_ts:
        # Files without a meta header (raw data sets): say how they were encoded.
        from pydicom.dataset import FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

        ds.file_meta = meta_ts if meta_ts is not None else FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if ds.is_implicit_VR is not False
                                          else ExplicitVRLittleEndian)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    try:
        raw = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        ts = ds.file_meta.get("TransferSyntaxUID")
        name = getattr(ts, "name", str(ts))
        raise ImageError(f"{path.name}: the DICOM pixel data is compressed as {name}, which "
                         f"cannot be decoded here ({_brief(exc)})") from None
    if raw.shape[:2] != (rows, cols):
        raise ImageError(f"{path.name}: the DICOM file is inconsistent (header and pixel data "
                         f"disagree)")
    bits_stored = int(ds.get("BitsStored", raw.dtype.itemsize * 8) or raw.dtype.itemsize * 8)
    meta: dict = {"photometric": photometric, "modality": str(ds.get("Modality", "")) or None}
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        if raw.ndim != 2:
            raise ImageError(f"{path.name}: unsupported DICOM layout with shape {raw.shape}")
        from pydicom.pixels import apply_modality_lut

        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        pixels = np.asarray(apply_modality_lut(raw, ds), dtype=np.float32)
        meta["rescale"] = (slope, intercept)
        units = ds.get("RescaleType") or ("HU" if meta["modality"] == "CT" else None)
        meta["units"] = str(units) if units else None
        meta["window"] = _dicom_window(ds)
        return Source(pixels, path, "gray", "DICOM", bits_stored, False, None, meta)
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        pixels = np.asarray(apply_color_lut(raw, ds))
        return Source(pixels, path, "rgb", "DICOM", pixels.dtype.itemsize * 8, False, None, meta)
    if photometric in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT") and raw.ndim == 3 \
            and raw.shape[2] == 3:
        # pydicom hands YBR data over converted to RGB.
        return Source(np.asarray(raw), path, "rgb", "DICOM", bits_stored, False, None, meta)
    raise ImageError(f"{path.name}: unsupported DICOM photometric interpretation {photometric!r}")


def _dicom_window(ds) -> tuple[float, float] | None:
    """The first (center, width) of the file's VOI window, or None."""
    from pydicom.multival import MultiValue

    values = []
    for keyword in ("WindowCenter", "WindowWidth"):
        v = ds.get(keyword)
        if isinstance(v, (MultiValue, list, tuple)):
            v = v[0] if len(v) else None
        try:
            values.append(float(v))
        except (TypeError, ValueError):
            return None
    c, w = values
    if not (np.isfinite(c) and np.isfinite(w)) or w < 1:
        return None
    return c, w


_READERS = {"PNG": _read_raster, "JPEG": _read_raster, "BMP": _read_raster,
            "TIFF": _read_tiff, "DICOM": _read_dicom}


# ---------------------------------------------------------------------------- helpers

def check_bands(pixels: np.ndarray | Source, allowed: int | Iterable[int], role: str) -> int:
    """Check that an image has an allowed number of bands; return that number.

    ``allowed`` is a count, or any collection of counts (``range(3, 9)`` for the 3 to 8
    bands of a multispectral image). ``role`` names the image in the message
    ("multispectral", "panchromatic", ...).
    """
    arr = pixels.pixels if isinstance(pixels, Source) else np.asarray(pixels)
    if arr.ndim not in (2, 3):
        raise ImageError(f"the {role} image has an unsupported shape {arr.shape}")
    n = 1 if arr.ndim == 2 else arr.shape[2]
    if isinstance(allowed, (int, np.integer)):
        allowed = (allowed,)
    ok = sorted({int(a) for a in allowed})
    if n not in ok:
        raise ImageError(f"the {role} image has {n} band{'s' if n != 1 else ''}; "
                         f"it needs {_describe_counts(ok)}")
    return n


def _describe_counts(ok: list[int]) -> str:
    unit = "band" if ok == [1] else "bands"
    if len(ok) == 1:
        return f"{ok[0]} {unit}"
    if ok == list(range(ok[0], ok[-1] + 1)):
        return f"{ok[0]} to {ok[-1]} bands"
    return f"{', '.join(map(str, ok[:-1]))} or {ok[-1]} bands"


def window_to_uint8(pixels: np.ndarray | Source, center: float | None = None,
                    width: float | None = None) -> np.ndarray:
    """An 8-bit display rendering of real-valued pixels through a linear VOI window.

    The window is, in order of preference: the ``center``/``width`` given; the DICOM
    file's WindowCenter/WindowWidth when ``pixels`` is a Source read from one; the full
    range of the data. The mapping is the DICOM linear VOI function (PS3.3 C.11.2.1.2);
    MONOCHROME1 sources (where higher means darker) come out inverted, as displayed.
    For display only: fusion works on the real values.
    """
    invert = False
    if isinstance(pixels, Source):
        window = pixels.meta.get("window")
        if window and center is None and width is None:
            center, width = window
        invert = pixels.meta.get("photometric") == "MONOCHROME1"
        pixels = pixels.pixels
    x = np.asarray(pixels, dtype=np.float64)
    if x.size == 0:
        raise ImageError("cannot display an empty image")
    if center is None or width is None:
        finite = x[np.isfinite(x)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        center = (lo + hi) / 2 + 0.5 if center is None else center
        width = max(hi - lo + 1, 1.0) if width is None else width
    center, width = float(center), float(width)
    if not np.isfinite(center) or not np.isfinite(width) or width < 1:
        raise ImageError(f"invalid display window (center {center:g}, width {width:g}); "
                         f"the width must be at least 1")
    if width == 1:
        y = np.where(x > center - 0.5, 255.0, 0.0)
    else:
        y = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    y = np.clip(np.nan_to_num(y, nan=0.0), 0, 255)
    out = np.rint(y).astype(np.uint8)
    return 255 - out if invert else out


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


# ---------------------------------------------------------------------------- writing

_WRITE_RULES: dict[str, tuple[set, set, str]] = {
    # format: (dtypes, channel counts, how to say it)
    "PNG": ({np.dtype("u1"), np.dtype("u2")}, {1, 2, 3, 4},
            "PNG holds 8- or 16-bit unsigned integers (uint8, uint16)"),
    "JPEG": ({np.dtype("u1")}, {1, 3}, "JPEG holds 8-bit gray or RGB (uint8)"),
    "BMP": ({np.dtype("u1")}, {1, 3, 4}, "BMP holds 8-bit samples (uint8)"),
    "TIFF": (set(_SUPPORTED_DTYPES), set(range(1, MAX_BANDS + 1)),
             f"TIFF holds {_SUPPORTED_NAMES}"),
    "GeoTIFF": (_SUPPORTED_DTYPES - {np.dtype("f2")}, set(range(1, MAX_BANDS + 1)),
                "GeoTIFF holds 8/16/32-bit integers or 32/64-bit floating point"),
}
_WRITE_FORMAT = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP",
                 ".tif": "TIFF", ".tiff": "TIFF"}


def write_image(path: str | os.PathLike, pixels: np.ndarray, *, georef: Georef | None = None,
                overwrite: bool = False, protect: Iterable = (),
                band_names: Sequence[str] | None = None) -> Path:
    """Write pixels (RGB order for colour, bands last) atomically and return the path.

    The format follows the suffix: PNG (8/16-bit; 1-4 channels, 4 = RGBA), JPEG and BMP
    (8-bit), TIFF (integers and floats, up to MAX_BANDS bands; 3 channels are tagged RGB,
    any other count is stored as that many bands, so 4 channels read back as a 4-band
    multispectral image, not RGBA).
    With ``georef`` the file is a GeoTIFF (.tif/.tiff only) keeping the transform, CRS
    and nodata. ``band_names`` (TIFF and GeoTIFF only, one per channel) are stored in
    the file and come back in ``Source.meta["band_names"]``. A dtype or channel count
    the format cannot hold is refused, never silently converted.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    fmt = _WRITE_FORMAT.get(suffix)
    if fmt is None:
        raise ImageError(f"cannot write {path.name}: use one of {', '.join(WRITABLE_SUFFIXES)}")
    if georef is not None:
        if fmt != "TIFF":
            raise ImageError(f"cannot keep georeferencing in {path.name}: write a GeoTIFF (.tif) "
                             f"or leave the georeferencing out")
        fmt = "GeoTIFF"
    for src in protect:
        if src is not None and Path(src).exists() and path.exists() and path.samefile(src):
            raise ImageError(f"refusing to write over the source image {path}")
    if path.is_dir():
        raise ImageError(f"{path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise ImageError(f"{path} exists; choose another name or allow overwriting")
    if not path.parent.is_dir():
        raise ImageError(f"folder does not exist: {path.parent}")
    pixels = _writable(path, pixels, fmt)
    if band_names is not None:
        band_names = [str(n) for n in band_names]
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        if fmt not in ("TIFF", "GeoTIFF") or len(band_names) != channels:
            raise ImageError(f"cannot write {path.name}: band names need a TIFF and one name "
                             f"per channel ({channels})")
    if fmt == "GeoTIFF":
        encode = _geotiff_encoder(path, pixels, georef, band_names)
    elif fmt == "TIFF":
        encode = _tiff_encoder(pixels, band_names)
    else:
        encode = _raster_encoder(path, pixels, fmt)
    try:
        atomic_write(path, encode)
    except ImageError:
        raise
    except OSError as exc:
        raise ImageError(f"cannot write {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # an encoder refusing the data
        raise ImageError(f"cannot write {path.name} as {fmt}: {_brief(exc)}") from None
    return path


def _writable(path: Path, pixels, fmt: str) -> np.ndarray:
    if not isinstance(pixels, np.ndarray):
        raise ImageError(f"cannot write {path.name}: the pixels must be a numpy array, "
                         f"got {type(pixels).__name__}")
    if pixels.size == 0:
        raise ImageError(f"cannot write {path.name}: the image is empty (shape {pixels.shape})")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim not in (2, 3):
        raise ImageError(f"cannot write {path.name}: an image is H x W or H x W x C, "
                         f"got shape {pixels.shape}")
    dtypes, channel_counts, rule = _WRITE_RULES[fmt]
    native = pixels.dtype.newbyteorder("=") if pixels.dtype.byteorder not in "|" else pixels.dtype
    if native not in dtypes:
        raise ImageError(f"cannot write {path.name}: {rule}, got {pixels.dtype}"
                         + (" - convert it first, or choose TIFF" if fmt != "TIFF" and native
                            in _SUPPORTED_DTYPES else ""))
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if channels not in channel_counts:
        allowed = sorted(channel_counts)
        raise ImageError(f"cannot write {path.name}: {fmt} holds "
                         f"{_describe_counts(allowed).replace('bands', 'channels')}, "
                         f"got {channels}")
    if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
        raise ImageError(f"cannot write {path.name}: the image holds NaN or infinite values")
    return np.ascontiguousarray(pixels, dtype=native)


def _raster_encoder(path: Path, pixels: np.ndarray, fmt: str):
    import cv2

    if pixels.ndim == 3 and pixels.shape[2] == 2:
        # Gray + alpha: OpenCV cannot encode two channels; Pillow can (8-bit only).
        if pixels.dtype != np.uint8:
            raise ImageError(f"cannot write {path.name}: a gray + alpha PNG must be 8-bit; "
                             f"choose TIFF for 16-bit")
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(pixels, "LA").save(buf, format="PNG")
        data = buf.getvalue()
    else:
        px = pixels
        if px.ndim == 3 and px.shape[2] == 3:
            px = px[:, :, ::-1]
        elif px.ndim == 3 and px.shape[2] == 4:
            px = px[:, :, [2, 1, 0, 3]]
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == "JPEG" else []
        ok, buf = cv2.imencode("." + fmt.lower(), np.ascontiguousarray(px), params)
        if not ok:
            raise ImageError(f"cannot encode {path.name} as {fmt}")
        data = buf.tobytes()

    def encode(fh):
        fh.write(data)

    return encode


def _tiff_encoder(pixels: np.ndarray, band_names: list[str] | None):
    import tifffile

    # tifffile's JSON description carries the band names (read back by _tiff_band_names).
    kwargs: dict = {"compression": "zlib",
                    "metadata": {"band_names": band_names} if band_names else None}
    if pixels.ndim == 3:
        # contig: one H x W image with C samples, not C pages (tifffile's default for
        # minisblack arrays with a last axis that could be a width).
        kwargs["planarconfig"] = "contig"
        kwargs["photometric"] = "rgb" if pixels.shape[2] == 3 else "minisblack"
    else:
        kwargs["photometric"] = "minisblack"

    def encode(fh):
        # Through memory: tifffile wants a named file, and mkstemp's handle has no name.
        buf = io.BytesIO()
        tifffile.imwrite(buf, pixels, **kwargs)
        fh.write(buf.getbuffer())

    return encode


def _geotiff_encoder(path: Path, pixels: np.ndarray, georef: Georef,
                     band_names: list[str] | None):
    import affine
    from rasterio.crs import CRS
    from rasterio.io import MemoryFile

    if not isinstance(georef, Georef):
        raise ImageError(f"cannot write {path.name}: georef must be a Georef, "
                         f"got {type(georef).__name__}")
    try:
        transform = georef.transform
        if not isinstance(transform, affine.Affine):
            transform = affine.Affine(*tuple(transform)[:6])
        crs = CRS.from_user_input(georef.crs) if georef.crs else None
    except Exception as exc:
        raise ImageError(f"cannot write {path.name}: invalid georeferencing "
                         f"({_brief(exc)})") from None
    bands = pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)
    profile = dict(driver="GTiff", width=pixels.shape[1], height=pixels.shape[0],
                   count=bands.shape[0], dtype=pixels.dtype.name, crs=crs, transform=transform,
                   nodata=georef.nodata, compress="deflate")
    if bands.shape[0] == 3:
        profile["photometric"] = "RGB"
    try:
        with MemoryFile() as mem:
            with mem.open(**profile) as dst:
                dst.write(bands)
                for i, name in enumerate(band_names or (), start=1):
                    dst.set_band_description(i, name)
            data = mem.read()
    except Exception as exc:  # rasterio/GDAL refusing e.g. a nodata the dtype cannot hold
        raise ImageError(f"cannot write {path.name} as GeoTIFF: {_brief(exc)}") from None
    def encode(fh):
        fh.write(data)

    return encode
