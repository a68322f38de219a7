"""Image I/O: round trips per format and dtype, the shared real data, every class of bad
input with its message, and random or damaged files that must only ever raise ImageError."""

from __future__ import annotations

import os
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from pmgi_gui.core import imageio
from pmgi_gui.core.errors import ImageError
from pmgi_gui.core.imageio import Georef, check_bands, read_image, read_source, write_image

from .conftest import shared_path


def ramp(h: int, w: int, c: int | None = None, dtype="uint8", seed: int = 0) -> np.ndarray:
    """Deterministic pixels covering most of the dtype's range."""
    rng = np.random.default_rng(seed)
    shape = (h, w) if c is None else (h, w, c)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 1000).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype)


# ----------------------------------------------------------------- synthetic DICOM

def make_dicom(path: Path, raw: np.ndarray, *, slope=1.0, intercept=0.0, window=None,
               photometric="MONOCHROME2", bits_stored=None, frames=None, preamble=True,
               pixel_data=True, rows_cols=None) -> Path:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.Rows, ds.Columns = rows_cols or raw.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = raw.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if raw.dtype.kind == "i" else 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if frames:
        ds.NumberOfFrames = frames
    if pixel_data:
        ds.PixelData = raw.astype(raw.dtype.newbyteorder("<")).tobytes()
    ds.save_as(path, enforce_file_format=preamble)
    return path


# ---------------------------------------------------------------------- round trips

@pytest.mark.parametrize("suffix,shape,dtype", [
    (".png", (37, 53), "uint8"), (".png", (37, 53, 3), "uint8"), (".png", (37, 53, 4), "uint8"),
    (".png", (37, 53, 2), "uint8"), (".png", (37, 53), "uint16"), (".png", (37, 53, 3), "uint16"),
    (".png", (37, 53, 4), "uint16"),
    (".bmp", (37, 53), "uint8"), (".bmp", (37, 53, 3), "uint8"),
    (".tif", (37, 53), "uint8"), (".tif", (37, 53, 3), "uint8"), (".tif", (37, 53), "uint16"),
    (".tif", (37, 53, 3), "uint16"), (".tif", (37, 53), "int16"), (".tif", (37, 53), "float32"),
    (".tiff", (37, 53), "float64"), (".tif", (37, 53, 4), "uint16"), (".tif", (37, 53, 8), "uint16"),
    (".tif", (37, 53, 8), "float32"), (".tif", (37, 53, 5), "uint8"),
])
def test_lossless_round_trip(tmp_path, suffix, shape, dtype):
    px = ramp(*shape, dtype=dtype)
    out = write_image(tmp_path / f"x{suffix}", px)
    src = read_source(out)
    assert src.pixels.dtype == px.dtype and src.pixels.shape == px.shape
    np.testing.assert_array_equal(src.pixels, px)
    np.testing.assert_array_equal(read_image(out), px)
    channels = 1 if px.ndim == 2 else shape[2]
    assert src.bit_depth == px.dtype.itemsize * 8
    if channels == 1:
        assert src.kind == "gray"
    elif channels == 3 or (channels == 4 and suffix == ".png"):
        assert src.kind == "rgb" and src.alpha == (channels == 4)
    elif channels == 2 and suffix == ".png":
        assert src.kind == "gray" and src.alpha
    else:
        assert src.kind == "multiband" and not src.alpha


@pytest.mark.parametrize("shape", [(40, 48), (40, 48, 3)])
def test_jpeg_round_trip_is_close(tmp_path, shape):
    y, x = np.mgrid[0:40, 0:48]
    px = (128 + 100 * np.sin(x / 7.0) * np.cos(y / 9.0)).astype(np.uint8)
    if len(shape) == 3:
        px = np.stack([px, px[::-1], 255 - px], axis=-1)
    src = read_source(write_image(tmp_path / "x.jpg", px))
    assert src.format == "JPEG" and src.pixels.shape == px.shape and src.dtype == np.uint8
    assert np.abs(src.pixels.astype(int) - px).mean() < 3


def test_colour_order_is_rgb(tmp_path):
    px = np.zeros((4, 5, 3), np.uint8)
    px[..., 0] = 200  # red
    for suffix in (".png", ".bmp", ".tif", ".jpg"):
        back = read_image(write_image(tmp_path / f"red{suffix}", px))
        assert back[..., 0].mean() > 150 and back[..., 2].mean() < 50, suffix


def test_tiff_band_names_round_trip(tmp_path):
    px = ramp(16, 16, 4, "uint16")
    src = read_source(write_image(tmp_path / "ms.tif", px, band_names=["b", "g", "r", "nir"]))
    assert src.meta["band_names"] == ["b", "g", "r", "nir"]
    with pytest.raises(ImageError, match="one name per channel"):
        write_image(tmp_path / "bad.tif", px, band_names=["b", "g"])


def test_geotiff_keeps_transform_crs_and_nodata(tmp_path):
    import rasterio
    from affine import Affine

    px = ramp(30, 40, 4, "uint16", seed=3)
    geo = Georef("EPSG:32633", Affine(2.0, 0.0, 500000.0, 0.0, -2.0, 4_100_000.0), nodata=0.0)
    out = write_image(tmp_path / "geo.tif", px, georef=geo, band_names=["b", "g", "r", "nir"])
    # An independent reader sees the georeferencing...
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32633 and ds.transform == geo.transform and ds.nodata == 0
        np.testing.assert_array_equal(np.moveaxis(ds.read(), 0, -1), px)
    # ...and so does ours, ready to hand back to the writer.
    src = read_source(out)
    assert src.format == "GeoTIFF" and src.kind == "multiband"
    assert src.georef == geo and src.meta["band_names"] == ["b", "g", "r", "nir"]
    np.testing.assert_array_equal(src.pixels, px)
    again = read_source(write_image(tmp_path / "again.tif", src.pixels, georef=src.georef))
    assert again.georef == geo


def test_geotiff_single_band_float_without_crs(tmp_path):
    from affine import Affine

    px = ramp(20, 24, None, "float32")
    geo = Georef(None, Affine(0.5, 0.0, 10.0, 0.0, -0.5, 20.0))
    src = read_source(write_image(tmp_path / "g.tif", px, georef=geo))
    assert src.georef == geo and src.kind == "gray" and src.dtype == np.float32
    np.testing.assert_array_equal(src.pixels, px)


def test_plain_tiff_has_no_georef(tmp_path):
    assert read_source(write_image(tmp_path / "p.tif", ramp(8, 8))).georef is None


def test_dicom_rescale_gives_real_units(tmp_path):
    raw = ramp(48, 64, None, "int16", seed=5) // 16
    path = make_dicom(tmp_path / "ct.dcm", raw, slope=0.5, intercept=-1024.0, window=([40, 400], [400, 2000]))
    src = read_source(path)
    assert src.format == "DICOM" and src.kind == "gray" and src.dtype == np.float32
    np.testing.assert_allclose(src.pixels, raw * 0.5 - 1024.0)
    assert src.meta["rescale"] == (0.5, -1024.0) and src.meta["units"] == "HU"
    assert src.meta["window"] == (40.0, 400.0) and src.bit_depth == 16


def test_dicom_16bit_is_not_truncated(tmp_path):
    raw = np.array([[0, 255, 256, 4095], [1000, 2000, 3000, 4000]], np.uint16)
    src = read_source(make_dicom(tmp_path / "mr.dcm", raw, bits_stored=12))
    np.testing.assert_array_equal(src.pixels, raw.astype(np.float32))
    assert src.bit_depth == 12 and src.pixels.max() == 4095


def test_dicom_without_preamble(tmp_path):
    raw = ramp(10, 12, None, "uint16", seed=1)
    path = make_dicom(tmp_path / "raw.dcm", raw, preamble=False)
    assert path.read_bytes()[128:132] != b"DICM"
    np.testing.assert_array_equal(read_image(path), raw.astype(np.float32))


def test_window_to_uint8_uses_the_file_window(tmp_path):
    raw = np.array([[-1000, -160, 40, 240, 3000]], np.int16)
    src = read_source(make_dicom(tmp_path / "w.dcm", raw, window=(40, 400)))
    shown = imageio.window_to_uint8(src)
    # DICOM linear window: -160 and below black, 240 and above white, 40 mid-grey.
    assert shown.dtype == np.uint8
    assert shown[0, 0] == 0 and shown[0, 1] == 0 and shown[0, 3] == 255 and shown[0, 4] == 255
    assert abs(int(shown[0, 2]) - 128) <= 1
    # An explicit window wins; without any, the data range is used.
    assert imageio.window_to_uint8(src, center=3000, width=2)[0, 4] == 255
    full = imageio.window_to_uint8(src.pixels)
    assert full.min() == 0 and full.max() == 255


def test_window_to_uint8_inverts_monochrome1(tmp_path):
    raw = np.array([[0, 100]], np.uint16)
    src = read_source(make_dicom(tmp_path / "m1.dcm", raw, photometric="MONOCHROME1", window=(50, 100)))
    shown = imageio.window_to_uint8(src)
    assert shown[0, 0] > shown[0, 1]


def test_window_rejects_bad_width():
    with pytest.raises(ImageError, match="width must be at least 1"):
        imageio.window_to_uint8(np.zeros((2, 2), np.float32), center=0, width=0)


# ----------------------------------------------------------- writer's refusals

@pytest.mark.parametrize("suffix,px,message", [
    (".png", np.zeros((4, 4), np.float32), "PNG holds 8- or 16-bit"),
    (".png", np.zeros((4, 4), np.int16), "PNG holds 8- or 16-bit"),
    (".jpg", np.zeros((4, 4), np.uint16), "JPEG holds 8-bit"),
    (".bmp", np.zeros((4, 4), np.uint16), "BMP holds 8-bit"),
    (".png", np.zeros((4, 4, 5), np.uint8), "PNG holds 1 to 4 channels, got 5"),
    (".jpg", np.zeros((4, 4, 4), np.uint8), "JPEG holds 1 or 3 channels, got 4"),
    (".tif", np.zeros((4, 4), bool), r"unsupported|TIFF holds"),
    (".tif", np.zeros((4, 4), np.complex64), "TIFF holds"),
    (".tif", np.zeros((4, 4), object), "TIFF holds"),
    (".tif", np.zeros((4, 4), np.int64), "TIFF holds"),
    (".tif", np.full((4, 4), np.nan, np.float32), "NaN or infinite"),
    (".tif", np.zeros((4, 4, 17), np.uint8), "TIFF holds 1 to 16 channels, got 17"),
    (".tif", np.zeros((0, 4), np.uint8), "empty"),
    (".tif", np.zeros((2, 2, 2, 2), np.uint8), "H x W or H x W x C"),
    (".gif", np.zeros((4, 4), np.uint8), "use one of"),
])
def test_writer_refuses_what_the_format_cannot_hold(tmp_path, suffix, px, message):
    target = tmp_path / f"out{suffix}"
    with pytest.raises(ImageError, match=message):
        write_image(target, px)
    assert not target.exists() and not list(tmp_path.iterdir())


def test_writer_refuses_georef_outside_tiff(tmp_path):
    from affine import Affine

    with pytest.raises(ImageError, match="georeferencing"):
        write_image(tmp_path / "x.png", ramp(4, 4), georef=Georef("EPSG:4326", Affine.identity()))


def test_writer_never_overwrites_unless_asked(tmp_path):
    out = write_image(tmp_path / "x.png", ramp(4, 4, seed=1))
    before = out.read_bytes()
    with pytest.raises(ImageError, match="exists"):
        write_image(out, ramp(4, 4, seed=2))
    assert out.read_bytes() == before
    write_image(out, ramp(4, 4, seed=2), overwrite=True)
    np.testing.assert_array_equal(read_image(out), ramp(4, 4, seed=2))


def test_writer_never_writes_over_a_protected_source(tmp_path):
    src = write_image(tmp_path / "src.tif", ramp(4, 4))
    link = tmp_path / "alias.tif"
    os.link(src, link)
    for target in (src, link):
        with pytest.raises(ImageError, match="source image"):
            write_image(target, ramp(4, 4, seed=9), overwrite=True, protect=(src,))
    np.testing.assert_array_equal(read_image(src), ramp(4, 4))


def test_writer_needs_an_existing_folder(tmp_path):
    with pytest.raises(ImageError, match="folder does not exist"):
        write_image(tmp_path / "nope" / "x.png", ramp(4, 4))


# --------------------------------------------------------- bad input, by class

def _png(width: int, height: int, data: bytes = b"", bit_depth: int = 8, colour: int = 0) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(data))
            + chunk(b"IEND", b""))


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        read_image(tmp_path / "nothing.png")


def test_directory(tmp_path):
    with pytest.raises(ImageError, match="is a folder, not an image file"):
        read_image(tmp_path)


def test_zero_byte_file(tmp_path):
    (tmp_path / "z.png").write_bytes(b"")
    with pytest.raises(ImageError, match=r"the file is empty \(0 bytes\)"):
        read_image(tmp_path / "z.png")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    p = write_image(tmp_path / "x.png", ramp(4, 4))
    p.chmod(0)
    with pytest.raises(ImageError, match="cannot read the file"):
        read_image(p)


def test_corrupt_png(tmp_path):
    p = tmp_path / "bad.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ImageError, match="the PNG file is damaged or truncated"):
        read_image(p)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".dcm"])
def test_truncated_file(tmp_path, suffix):
    full = tmp_path / f"full{suffix}"
    if suffix == ".dcm":
        make_dicom(full, ramp(64, 64, None, "uint16"))
    else:
        write_image(full, ramp(64, 64, 3, seed=4))
    cut = tmp_path / f"cut{suffix}"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="damaged or truncated|inconsistent"):
        read_image(cut)


def test_mislabelled_text_file(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("this is not a picture\n")
    with pytest.raises(ImageError, match=r"not a valid PNG file .*named \.png"):
        read_image(p)


@pytest.mark.parametrize("name,content,message", [
    ("anim.gif", b"GIF89a" + b"\0" * 20, r"unsupported format \(GIF\)"),
    ("notes.txt", b"hello", r"unsupported file format \('\.txt'\)"),
    ("README", b"hello", r"unsupported file format \(without a suffix\)"),
])
def test_unsupported_format(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageError, match=message):
        read_image(tmp_path / name)


def test_content_wins_over_suffix(tmp_path):
    png = write_image(tmp_path / "x.png", ramp(6, 7))
    renamed = tmp_path / "x.jpg"
    png.rename(renamed)
    src = read_source(renamed)
    assert src.format == "PNG"
    np.testing.assert_array_equal(src.pixels, ramp(6, 7))


def test_empty_image(tmp_path):
    (tmp_path / "e.png").write_bytes(_png(0, 0))
    with pytest.raises(ImageError, match=r"the image is empty \(0 x 0 pixels\)"):
        read_image(tmp_path / "e.png")
    path = make_dicom(tmp_path / "e.dcm", np.zeros((0, 0), np.uint16), rows_cols=(0, 0))
    with pytest.raises(ImageError, match="the image is empty"):
        read_image(path)


def test_png_with_bogus_huge_header_is_refused_before_decoding(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png(100_000, 100_000, b"\0" * 100))
    with pytest.raises(ImageError, match=r"too large: 100000 x 100000 pixels .*limit is 100\.0"):
        read_image(p)


def test_pixel_limit_is_per_call(tmp_path):
    p = write_image(tmp_path / "x.png", ramp(40, 50))
    assert read_image(p, max_pixels=2000).shape == (40, 50)
    with pytest.raises(ImageError, match=r"too large: 50 x 40 pixels"):
        read_image(p, max_pixels=1999)
    with pytest.raises(ImageError, match="positive"):
        read_image(p, max_pixels=0)


def test_tiff_size_is_checked_from_the_header(tmp_path):
    import tifffile

    p = write_image(tmp_path / "x.tif", ramp(8, 8))
    with tifffile.TiffFile(p, mode="r+b") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(60000)
        tif.pages[0].tags["ImageLength"].overwrite(60000)
    with pytest.raises(ImageError, match=r"too large: 60000 x 60000"):
        read_image(p)


def test_tiff_strip_past_the_end_is_refused_without_reading_it(tmp_path):
    import tifffile

    p = write_image(tmp_path / "x.tif", ramp(8, 8))  # one zlib strip
    with tifffile.TiffFile(p, mode="r+b") as tif:
        tif.pages[0].tags["StripByteCounts"].overwrite(0xFFFFFF00)
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="damaged or truncated .*past the end of the file"):
            read_image(p)
        assert tracemalloc.get_traced_memory()[1] < 50_000_000
    finally:
        tracemalloc.stop()


def test_geotiff_and_dicom_sizes_are_checked_from_the_header(tmp_path):
    from affine import Affine

    geo = write_image(tmp_path / "g.tif", ramp(30, 40, 4, "uint16"),
                      georef=Georef("EPSG:4326", Affine(0.1, 0, 0, 0, -0.1, 0)))
    with pytest.raises(ImageError, match="too large: 40 x 30"):
        read_image(geo, max_pixels=1000)
    dcm = make_dicom(tmp_path / "big.dcm", np.zeros((2, 2), np.uint16), rows_cols=(50000, 50000))
    with pytest.raises(ImageError, match="too large: 50000 x 50000"):
        read_image(dcm)


def test_nan_and_inf(tmp_path):
    import tifffile

    px = np.ones((5, 6), np.float32)
    px[1, 2], px[3, 4] = np.nan, np.inf
    tifffile.imwrite(tmp_path / "nan.tif", px)
    with pytest.raises(ImageError, match="holds 2 NaN or infinite values"):
        read_image(tmp_path / "nan.tif")


@pytest.mark.parametrize("dtype,what", [("complex64", "complex numbers"), ("int64", "64-bit integers")])
def test_unsupported_dtype(tmp_path, dtype, what):
    import tifffile

    tifffile.imwrite(tmp_path / "x.tif", np.zeros((5, 6), dtype))
    with pytest.raises(ImageError, match=f"unsupported sample type {dtype} \\({what}\\)"):
        read_image(tmp_path / "x.tif")


def test_bilevel_tiff_becomes_0_and_255(tmp_path):
    import tifffile

    bits = np.zeros((6, 8), bool)
    bits[2:4] = True
    tifffile.imwrite(tmp_path / "b.tif", bits, photometric="minisblack")
    px = read_image(tmp_path / "b.tif")
    assert px.dtype == np.uint8 and set(np.unique(px)) == {0, 255} and px[2, 0] == 255
    # MINISWHITE (fax convention, tifffile's default for bool): 1 is black.
    tifffile.imwrite(tmp_path / "w.tif", bits, photometric="miniswhite")
    np.testing.assert_array_equal(read_image(tmp_path / "w.tif"), 255 - px)


def test_tiff_stacks_are_refused(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "z.tif", np.zeros((5, 8, 8), np.uint8), imagej=True,
                     metadata={"axes": "ZYX"})
    with pytest.raises(ImageError, match="holds 5 slices"):
        read_image(tmp_path / "z.tif")


def test_dicom_multiframe_and_no_pixels(tmp_path):
    multi = make_dicom(tmp_path / "m.dcm", np.zeros((3, 4, 4), np.uint16), frames=3)
    with pytest.raises(ImageError, match="holds 3 frames; open a single-slice DICOM"):
        read_image(multi)
    empty = make_dicom(tmp_path / "n.dcm", np.zeros((4, 4), np.uint16), pixel_data=False)
    with pytest.raises(ImageError, match="holds no image"):
        read_image(empty)


def test_check_bands():
    ms, pan = np.zeros((8, 8, 4), np.uint16), np.zeros((8, 8), np.uint16)
    assert check_bands(ms, range(3, 9), "multispectral") == 4
    assert check_bands(pan, 1, "panchromatic") == 1
    with pytest.raises(ImageError, match="the multispectral image has 2 bands; it needs 3 to 8 bands"):
        check_bands(np.zeros((8, 8, 2)), range(3, 9), "multispectral")
    with pytest.raises(ImageError, match="the panchromatic image has 4 bands; it needs 1 band$"):
        check_bands(ms, 1, "panchromatic")
    with pytest.raises(ImageError, match="needs 1 or 3 bands"):
        check_bands(np.zeros((8, 8, 2)), (1, 3), "visible")


# ------------------------------------------------------------ shared real data

def _pairs(task: str) -> list[Path]:
    folders = sorted(p for p in shared_path("data", task).iterdir() if p.is_dir())
    if not folders:
        pytest.skip(f"no pairs under {shared_path('data', task)}")
    return folders


def _one(folder: Path, stem: str) -> Path:
    (path,) = [p for p in folder.iterdir() if p.stem == stem]
    return path


@pytest.mark.parametrize("task,stems,kind", [
    ("ir-vis", ("ir", "vis"), "gray"),
    ("multi-exposure", ("under", "over"), "rgb"),
    ("medical", ("pet", "mri"), "rgb"),
    ("multi-focus", ("near", "far"), "rgb"),
])
def test_shared_real_pairs(task, stems, kind):
    import cv2
    import tifffile

    for folder in _pairs(task):
        a, b = (read_source(_one(folder, s)) for s in stems)
        assert a.size == b.size, folder
        for src in (a, b):
            assert src.kind == kind and src.dtype == np.uint8 and src.georef is None
            # The same pixels as an independent decoder gives.
            if src.format == "TIFF":
                ref = tifffile.imread(src.path)
            else:
                ref = cv2.imread(str(src.path), cv2.IMREAD_UNCHANGED)
                ref = ref[..., ::-1] if ref.ndim == 3 else ref
            if src.format == "JPEG":
                assert np.abs(ref.astype(int) - src.pixels).mean() < 1.0  # decoders may round differently
            else:
                np.testing.assert_array_equal(src.pixels, ref)


def test_shared_pan_sharpening_pairs_keep_bands_and_bit_depth():
    import rasterio
    import tifffile

    for folder in _pairs("pan-sharpening"):
        ms, pan = read_source(folder / "ms.tif"), read_source(folder / "pan.tif")
        ref_ms = tifffile.imread(folder / "ms.tif")
        assert ms.kind == "multiband" and ms.pixels.shape == ref_ms.shape and ms.dtype == ref_ms.dtype
        np.testing.assert_array_equal(ms.pixels, ref_ms)
        assert ms.bit_depth == ref_ms.dtype.itemsize * 8
        assert check_bands(ms, range(3, 9), "multispectral") == 4
        assert check_bands(pan, 1, "panchromatic") == 1 and pan.dtype == ref_ms.dtype
        assert pan.size == (4 * ms.size[0], 4 * ms.size[1])
        for src in (ms, pan):
            with tifffile.TiffFile(src.path) as tif:
                is_geo = tif.pages[0].is_geotiff
            if is_geo:
                with rasterio.open(src.path) as ds:
                    assert src.georef is not None and src.georef.transform == ds.transform
                    assert src.georef.crs == (ds.crs.to_string() if ds.crs else None)
            else:
                assert src.georef is None


# ------------------------------------------------ random and damaged files (fuzz)

FUZZ_SUFFIXES = imageio.READABLE_SUFFIXES  # .png .jpg .jpeg .bmp .tif .tiff .dcm .dicom
_SAME = {".jpeg": ".jpg", ".tiff": ".tif", ".dicom": ".dcm"}


@pytest.fixture(scope="module")
def fuzz_seeds(tmp_path_factory):
    """Valid small files per suffix, the starting points of the mutations."""
    d = tmp_path_factory.mktemp("seeds")
    seeds = {
        ".png": [write_image(d / "g8.png", ramp(12, 10)), write_image(d / "c16.png", ramp(9, 11, 3, "uint16")),
                 write_image(d / "la.png", ramp(8, 8, 2))],
        ".jpg": [write_image(d / "c.jpg", ramp(16, 16, 3)), write_image(d / "g.jpg", ramp(8, 24))],
        ".bmp": [write_image(d / "c.bmp", ramp(7, 9, 3)), write_image(d / "g.bmp", ramp(7, 9))],
        ".tif": [write_image(d / "m.tif", ramp(8, 9, 4, "uint16")), write_image(d / "f.tif", ramp(8, 9, None, "float32")),
                 write_image(d / "rgb.tif", ramp(6, 5, 3))],
        ".dcm": [make_dicom(d / "a.dcm", ramp(8, 10, None, "int16"), slope=2.0, intercept=-5.0, window=(0, 100)),
                 make_dicom(d / "b.dcm", ramp(6, 6, None, "uint16"), preamble=False)],
    }
    from affine import Affine

    seeds[".tif"].append(write_image(d / "geo.tif", ramp(8, 8, None, "uint16"),
                                     georef=Georef("EPSG:32633", Affine(1, 0, 0, 0, -1, 0), 0.0)))
    return {k: [p.read_bytes() for p in v] for k, v in seeds.items()}


def _mutations():
    from hypothesis import strategies as st

    flip = st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(0, 7))
    cut = st.tuples(st.just("cut"), st.integers(0, 1 << 20), st.just(0))
    poke = st.tuples(st.just("poke"), st.integers(0, 400), st.integers(0, 255))  # header bytes
    big = st.tuples(st.just("big"), st.integers(0, 400), st.sampled_from([0, 1, 0x7F, 0xFF]))
    return st.lists(st.one_of(flip, cut, poke, big), min_size=1, max_size=6)


def _mutate(data: bytes, edits) -> bytes:
    buf = bytearray(data)
    for op, pos, arg in edits:
        if not buf:
            break
        pos %= len(buf)
        if op == "flip":
            buf[pos] ^= 1 << arg
        elif op == "cut":
            del buf[pos:]
        elif op == "poke":
            buf[pos] = arg
        else:  # a run of extreme bytes, as an edited width, height or count would be
            buf[pos:pos + 4] = bytes([arg]) * 4
    return bytes(buf)


_MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".jpg": b"\xff\xd8\xff", ".bmp": b"BM",
          ".tif": b"II*\x00", ".dcm": b"\0" * 128 + b"DICM"}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("suffix", FUZZ_SUFFIXES)
def test_random_and_damaged_files_raise_only_image_error(tmp_path, fuzz_seeds, suffix):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    target = tmp_path / f"fuzz{suffix}"
    seeds, magic = fuzz_seeds[_SAME.get(suffix, suffix)], _MAGIC[_SAME.get(suffix, suffix)]
    raw = st.binary(max_size=1024)
    sources = st.one_of(
        raw.map(lambda b: ("random", b)),
        raw.map(lambda b: ("magic", magic + b)),
        st.tuples(st.sampled_from(range(len(seeds))), _mutations()).map(
            lambda t: ("mutated", _mutate(seeds[t[0]], t[1]))),
    )

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(sources)
    def check(case):
        _, data = case
        target.write_bytes(data)
        tracemalloc.reset_peak()
        try:
            src = read_source(target, max_pixels=1_000_000)
        except ImageError as exc:
            assert str(exc)
        else:
            assert src.pixels.ndim in (2, 3) and src.pixels.size > 0
            assert src.kind in ("gray", "rgb", "multiband")
        # A damaged length or count must not make a small file reserve a lot of memory
        # (the pixel limit allows at most 1 M pixels x 16 bands x 8 bytes = 128 MB).
        assert tracemalloc.get_traced_memory()[1] < 160_000_000

    tracemalloc.start()
    try:
        check()
    finally:
        tracemalloc.stop()
