"""Classical fusion methods the PMGI paper compares against, with PMGI's signatures.

Each method is written from its paper; building blocks come from OpenCV, SciPy,
PyWavelets and NumPy. The task pipelines (colour, bands) wrap every method alike,
so a method only ever sees what PMGI's network sees:

* ``kind == "gray"``: ``fn(a, b) -> fused``. ``a`` and ``b`` are float32 H x W gray
  images in 0..255; ``a`` is the task's first input (infrared, under-exposed Y, PET
  intensity, near focus; see ``tasks.py``). The result is float32 H x W, clipped to
  0..255.
* ``kind == "pan"``: ``fn(ms_up, pan) -> fused``. ``ms_up`` is float32 H x W x N
  (N bands, already upsampled to the PAN grid), ``pan`` float32 H x W. The result is
  float32 H x W x N in the data's own units (not clipped: the data may be 11- or
  16-bit).

``BASELINES`` maps a key to its :class:`Baseline`; ``baselines_for(task)`` lists those
of one task in the order of the registry (``average`` first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from .errors import PmgiError
from .tasks import TASK_NAMES, get_task

__all__ = [
    "Baseline", "BASELINES", "baselines_for", "get_baseline",
    "average", "ratio_pyramid", "laplacian_pyramid", "exposure_fusion", "pca_fusion",
    "dwt_fusion", "dct_variance", "guided_filter", "guided_filter_fusion",
    "pca_pansharpen", "fast_ihs", "brovey",
]

GrayFusion = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ---------------------------------------------------------------------------- helpers

def _gray_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if a.ndim != 2 or b.ndim != 2:
        raise PmgiError(f"gray fusion needs two H x W images, got shapes {a.shape} and {b.shape}")
    if a.shape != b.shape:
        raise PmgiError(f"the two sources differ in size: {a.shape} and {b.shape}")
    return a, b


def _pan_pair(ms_up: np.ndarray, pan: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Float64 inside: 16-bit data and products of large values lose digits in float32.
    ms = np.asarray(ms_up, dtype=np.float64)
    pan = np.asarray(pan, dtype=np.float64)
    if ms.ndim != 3 or pan.ndim != 2 or ms.shape[:2] != pan.shape:
        raise PmgiError(f"pan-sharpening needs MS H x W x N on the PAN grid H x W, got "
                        f"{ms.shape} and {pan.shape}")
    return ms, pan


def _out_gray(f: np.ndarray) -> np.ndarray:
    return np.clip(f, 0.0, 255.0).astype(np.float32)


def _levels(shape: tuple[int, ...], max_levels: int = 5, min_size: int = 8) -> int:
    """Pyramid levels below the full image such that the coarsest is >= min_size pixels."""
    n, size = 0, min(shape[:2])
    while n < max_levels and size // 2 >= min_size:
        size //= 2
        n += 1
    return n


def _gaussian_pyramid(img: np.ndarray, levels: int) -> list[np.ndarray]:
    """Burt & Adelson's REDUCE with OpenCV's 5-tap generating kernel (1 4 6 4 1)/16."""
    import cv2

    pyr = [img]
    for _ in range(levels):
        pyr.append(cv2.pyrDown(pyr[-1]))
    return pyr


def _expand(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Burt & Adelson's EXPAND to an exact target size (odd sizes allowed)."""
    import cv2

    return cv2.pyrUp(img, dstsize=(shape[1], shape[0]))


def _pick_max_abs(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Element-wise the coefficient of larger magnitude; ties go to x (the first source)."""
    return np.where(np.abs(x) >= np.abs(y), x, y)


def _mean_std_match(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """src shifted and scaled to ref's mean and standard deviation (global statistics).

    A constant src cannot be stretched; it is only shifted to ref's mean.
    """
    s_std = src.std()
    gain = ref.std() / s_std if s_std > 0 else 0.0
    return (src - src.mean()) * gain + ref.mean()


# ---------------------------------------------------------------------- gray methods

def average(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Plain pixel average ``(a + b) / 2``: the floor every fusion method should beat.

    Gray convention (module docstring). Self-fusion is exact.
    """
    a, b = _gray_pair(a, b)
    return _out_gray(0.5 * (a + b))


def laplacian_pyramid(a: np.ndarray, b: np.ndarray, levels: int | None = None) -> np.ndarray:
    """Laplacian pyramid fusion.

    Burt, P. J. and Adelson, E. H. (1983). The Laplacian pyramid as a compact image
    code. IEEE Trans. Communications 31(4), 532-540 (the pyramid); fusion rule as
    used throughout the fusion literature: at every detail level keep the
    coefficient of larger absolute value, average the two low-pass residuals, then
    collapse the pyramid. ``levels`` detail levels (default: up to 5, the coarsest
    level at least 8 pixels). Gray convention (module docstring); the pyramid is
    exactly invertible, so self-fusion returns the input up to float32 rounding.
    """
    a, b = _gray_pair(a, b)
    n = _levels(a.shape) if levels is None else int(levels)
    ga, gb = _gaussian_pyramid(a, n), _gaussian_pyramid(b, n)
    fused = 0.5 * (ga[n] + gb[n])
    for k in range(n - 1, -1, -1):
        shape = ga[k].shape
        la = ga[k] - _expand(ga[k + 1], shape)
        lb = gb[k] - _expand(gb[k + 1], shape)
        fused = _expand(fused, shape) + _pick_max_abs(la, lb)
    return _out_gray(fused)


def ratio_pyramid(a: np.ndarray, b: np.ndarray, levels: int | None = None,
                  offset: float = 1.0) -> np.ndarray:
    """Ratio of low-pass pyramid (RoLP) fusion.

    Toet, A. (1989). Image fusion by a ratio of low-pass pyramid. Pattern
    Recognition Letters 9(4), 245-253.

    Level k of the pyramid is the ratio ``R_k = G_k / EXPAND(G_{k+1})`` of successive
    Gaussian (low-pass) levels, the top level is ``G_N``; the image is recovered by
    ``G_k = R_k * EXPAND(G_{k+1})``. Luminance contrast is ``C_k = R_k - 1``. Fusion
    keeps, per pixel and level, the ratio whose contrast has the larger absolute value
    (ties: source a) and averages the two top levels. Intensities are shifted by
    ``offset`` (1 grey level) before the ratios are taken so that black pixels (e.g.
    the black border of TNO frames) give finite ratios; the shift is removed after
    reconstruction. Levels as in :func:`laplacian_pyramid`. Gray convention (module
    docstring); self-fusion returns the input up to float32 rounding.
    """
    a, b = _gray_pair(a, b)
    n = _levels(a.shape) if levels is None else int(levels)
    ga, gb = _gaussian_pyramid(a + offset, n), _gaussian_pyramid(b + offset, n)
    fused = 0.5 * (ga[n] + gb[n])
    for k in range(n - 1, -1, -1):
        shape = ga[k].shape
        # Low-pass levels of non-negative images are >= offset > 0: safe divisions.
        ra = ga[k] / _expand(ga[k + 1], shape)
        rb = gb[k] / _expand(gb[k + 1], shape)
        ratio = np.where(np.abs(ra - 1.0) >= np.abs(rb - 1.0), ra, rb)
        fused = ratio * _expand(fused, shape)
    return _out_gray(fused - offset)


def exposure_fusion(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exposure fusion of two gray (Y) exposures with OpenCV's ``MergeMertens``.

    Mertens, T., Kautz, J. and Van Reeth, F. (2007). Exposure fusion. Proc. Pacific
    Graphics 2007, 382-390.

    Weights per pixel are contrast (absolute Laplacian) x well-exposedness (Gaussian
    around 0.5 with sigma 0.2), normalised over the exposures and blended in a
    Laplacian pyramid. The gray image is replicated to three channels for OpenCV, so
    two exponents are set for gray data: saturation (the standard deviation over the
    channels, zero for gray) gets exponent 0, and well-exposedness, which OpenCV
    multiplies over the three channels, gets exponent 1/3 so that it is the paper's
    single-channel Gaussian. OpenCV scales 0..255 inputs by 1/255 and returns about
    0..1 (the pyramid blend may overshoot slightly); the result is multiplied by 255
    and clipped to 0..255. Gray convention (module docstring); self-fusion returns the
    input up to float32 rounding.
    """
    import cv2

    a, b = _gray_pair(a, b)
    merge = cv2.createMergeMertens(contrast_weight=1.0, saturation_weight=0.0,
                                   exposure_weight=1.0 / 3.0)
    fused = merge.process([cv2.merge([a, a, a]), cv2.merge([b, b, b])])
    return _out_gray(fused[:, :, 0] * 255.0)


def pca_fusion(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PCA-weighted average: ``F = w_a a + w_b b`` with weights from the principal
    eigenvector of the 2 x 2 covariance matrix of the two images.

    Naidu, V. P. S. and Raol, J. R. (2008). Pixel-level image fusion using wavelets
    and principal component analysis. Defence Science Journal 58(3), 338-352.

    The weights are the components of the eigenvector of the largest eigenvalue,
    divided by their sum. Absolute values are taken first, so that anti-correlated
    sources (eigenvector with components of opposite signs) still get weights in
    0..1. A source without variance gets weight 0 when the other varies; when neither
    varies the weights are 1/2. Gray convention (module docstring); self-fusion is
    exact (weights 1/2, 1/2).
    """
    a, b = _gray_pair(a, b)
    cov = np.cov(np.stack([a.ravel(), b.ravel()]).astype(np.float64))
    values, vectors = np.linalg.eigh(cov)
    v = np.abs(vectors[:, np.argmax(values)])
    if values.max() <= 0 or v.sum() <= 0:
        v = np.array([1.0, 1.0])
    w = v / v.sum()
    return _out_gray(w[0] * a.astype(np.float64) + w[1] * b)


def dwt_fusion(a: np.ndarray, b: np.ndarray, wavelet: str = "db2", levels: int = 3) -> np.ndarray:
    """Discrete wavelet transform fusion with PyWavelets.

    Li, H., Manjunath, B. S. and Mitra, S. K. (1995). Multisensor image fusion using
    the wavelet transform. Graphical Models and Image Processing 57(3), 235-245.

    A ``levels``-level 2-D DWT (default Daubechies ``db2``, 3 levels, symmetric border
    extension; fewer levels when the image is too small); at every level and
    orientation (horizontal, vertical, diagonal) keep the detail coefficient of larger
    absolute value (the paper's maximum-selection rule, ties: source a), average the
    two approximation bands, invert. Gray convention (module docstring); the transform
    is perfectly invertible, so self-fusion returns the input up to float rounding.
    """
    import pywt

    a, b = _gray_pair(a, b)
    w = pywt.Wavelet(wavelet)
    n = max(0, min(int(levels), pywt.dwt_max_level(min(a.shape), w.dec_len)))
    ca = pywt.wavedec2(a.astype(np.float64), w, mode="symmetric", level=n)
    cb = pywt.wavedec2(b.astype(np.float64), w, mode="symmetric", level=n)
    fused = [0.5 * (ca[0] + cb[0])]
    for da, db in zip(ca[1:], cb[1:]):
        fused.append(tuple(_pick_max_abs(x, y) for x, y in zip(da, db)))
    f = pywt.waverec2(fused, w, mode="symmetric")
    return _out_gray(f[: a.shape[0], : a.shape[1]])


def dct_variance(a: np.ndarray, b: np.ndarray, block: int = 8,
                 consistency: bool = True) -> np.ndarray:
    """Multi-focus fusion in the DCT domain by block variance (DCT + Variance + CV).

    Haghighat, M. B. A., Aghagolzadeh, A. and Seyedarabi, H. (2011). Multi-focus image
    fusion for visual sensor networks in DCT domain. Computers & Electrical
    Engineering 37(5), 789-797.

    Both images are cut into ``block`` x ``block`` blocks (8 x 8) and each block is
    transformed by the orthonormal 2-D DCT-II. A block's variance is computed from its
    coefficients as the mean of the squared AC coefficients,
    ``sum_{(k,l) != (0,0)} d(k,l)^2 / 64`` (the paper's formula; with the orthonormal
    DCT it equals the block's pixel variance). The block of larger variance is taken
    (its DCT coefficients; the inverse DCT gives back its pixels); ties go to source a.
    With ``consistency`` (the paper's "CV" variant) the block decision map is then
    majority-filtered over each block's 3 x 3 block neighbourhood. Images whose size is
    not a multiple of the block size are reflect-padded for the decisions and cropped
    back. Gray convention (module docstring); self-fusion is exact.
    """
    from scipy import fft, ndimage

    a, b = _gray_pair(a, b)
    h, w = a.shape
    ph, pw = -h % block, -w % block
    pad = ((0, ph), (0, pw))
    pa, pb = np.pad(a, pad, mode="symmetric"), np.pad(b, pad, mode="symmetric")
    bh, bw = pa.shape[0] // block, pa.shape[1] // block

    def ac_variance(img: np.ndarray) -> np.ndarray:
        blocks = img.astype(np.float64).reshape(bh, block, bw, block)
        d = fft.dctn(blocks, type=2, axes=(1, 3), norm="ortho")
        energy = np.square(d).sum(axis=(1, 3)) - np.square(d[:, 0, :, 0])
        return energy / block**2

    choose_a = ac_variance(pa) >= ac_variance(pb)
    if consistency:
        votes = ndimage.uniform_filter(choose_a.astype(np.float64), size=3, mode="nearest")
        # A block whose neighbourhood is split evenly (only at borders) keeps its own choice.
        choose_a = np.where(np.isclose(votes, 0.5), choose_a, votes > 0.5)
    mask = np.kron(choose_a, np.ones((block, block), dtype=bool))[:h, :w]
    return _out_gray(np.where(mask, a, b))


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """The guided filter (He, Sun and Tang, ECCV 2010 / IEEE TPAMI 35(6), 2013) with a
    gray guide, built from (2r+1) x (2r+1) box means (OpenCV's ``blur``, reflected
    borders). ``guide`` and ``src`` are float arrays of one size; ``eps`` is in the
    guide's squared units.
    """
    import cv2

    size = (2 * int(radius) + 1,) * 2

    def mean(x):
        return cv2.blur(x, size, borderType=cv2.BORDER_REFLECT)

    guide = guide.astype(np.float64)
    src = src.astype(np.float64)
    mean_i, mean_p = mean(guide), mean(src)
    var_i = mean(guide * guide) - mean_i * mean_i
    cov_ip = mean(guide * src) - mean_i * mean_p
    a_coef = cov_ip / (var_i + eps)
    b_coef = mean_p - a_coef * mean_i
    return mean(a_coef) * guide + mean(b_coef)


def _normalised_weights(wa: np.ndarray, wb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Guided filtering may leave weights slightly outside 0..1; negative weights would
    # invert image content, so they are clipped before the normalisation to a sum of 1.
    wa, wb = np.clip(wa, 0.0, 1.0), np.clip(wb, 0.0, 1.0)
    total = wa + wb
    safe = total > 1e-12
    wa = np.where(safe, wa / np.where(safe, total, 1.0), 0.5)
    return wa, 1.0 - wa


def guided_filter_fusion(a: np.ndarray, b: np.ndarray, r1: int = 45, eps1: float = 0.3,
                         r2: int = 7, eps2: float = 1e-6) -> np.ndarray:
    """Guided filtering based fusion (GFF).

    Li, S., Kang, X. and Hu, J. (2013). Image fusion with guided filtering. IEEE Trans.
    Image Processing 22(7), 2864-2875.

    1. Two-scale decomposition: base = 31 x 31 mean filter of the source, detail =
       source - base.
    2. Saliency: absolute 3 x 3 Laplacian, smoothed by an 11 x 11 Gaussian with
       sigma 5. Weight map P_n = 1 where source n has the larger saliency (ties: a).
    3. Weight refinement by guided filtering with the source as guide: base weights
       with (r1, eps1) = (45, 0.3), detail weights with (r2, eps2) = (7, 1e-6); the
       intensities are scaled to 0..1 for the filter, which is the scale these eps
       values are given for. Refined weights are clipped to 0..1 and normalised to sum
       to 1 per pixel.
    4. F = sum_n W^B_n base_n + W^D_n detail_n.

    Gray convention (module docstring); self-fusion is exact (weights sum to 1).
    """
    import cv2

    a, b = _gray_pair(a, b)
    srcs = [a.astype(np.float64) / 255.0, b.astype(np.float64) / 255.0]
    bases = [cv2.blur(s, (31, 31), borderType=cv2.BORDER_REFLECT) for s in srcs]
    lap = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)
    saliency = [cv2.GaussianBlur(np.abs(cv2.filter2D(s, -1, lap, borderType=cv2.BORDER_REFLECT)),
                                 (11, 11), 5, borderType=cv2.BORDER_REFLECT) for s in srcs]
    pa = (saliency[0] >= saliency[1]).astype(np.float64)
    pb = 1.0 - pa
    wba, wbb = _normalised_weights(guided_filter(srcs[0], pa, r1, eps1),
                                   guided_filter(srcs[1], pb, r1, eps1))
    wda, wdb = _normalised_weights(guided_filter(srcs[0], pa, r2, eps2),
                                   guided_filter(srcs[1], pb, r2, eps2))
    base = wba * bases[0] + wbb * bases[1]
    detail = wda * (srcs[0] - bases[0]) + wdb * (srcs[1] - bases[1])
    return _out_gray((base + detail) * 255.0)


# ---------------------------------------------------------------- pan-sharpening

def pca_pansharpen(ms_up: np.ndarray, pan: np.ndarray) -> np.ndarray:
    """PCA component substitution.

    Chavez, P. S., Sides, S. C. and Anderson, J. A. (1991). Comparison of three
    different methods to merge multiresolution and multispectral data: Landsat TM and
    SPOT panchromatic. Photogrammetric Engineering & Remote Sensing 57(3), 295-303.

    The bands are centred and rotated onto the eigenvectors of their N x N covariance
    (``numpy.linalg.eigh``); the first principal component PC1 (sign chosen so that its
    loadings sum to a positive number, i.e. it grows with brightness) is replaced by
    the PAN, mean/std-matched to PC1, and the rotation is inverted. Because the
    rotation is orthonormal this is ``F = MS + v1 (PAN' - PC1)`` with v1 the loadings.
    A PAN that is an increasing affine function of PC1 gives back ``ms_up``. Pan
    convention (module docstring); values are not clipped.
    """
    ms, pan = _pan_pair(ms_up, pan)
    h, w, n = ms.shape
    x = ms.reshape(-1, n)
    centred = x - x.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(centred, rowvar=False).reshape(n, n))
    v1 = vectors[:, np.argmax(values)]
    if v1.sum() < 0:
        v1 = -v1
    pc1 = centred @ v1
    pan_matched = _mean_std_match(pan.ravel(), pc1)
    fused = x + np.outer(pan_matched - pc1, v1)
    return fused.reshape(h, w, n).astype(np.float32)


def fast_ihs(ms_up: np.ndarray, pan: np.ndarray) -> np.ndarray:
    """Fast IHS (generalised IHS) pan-sharpening.

    Tu, T.-M., Huang, P. S., Hung, C.-L. and Chang, C.-P. (2004). A fast
    intensity-hue-saturation fusion technique with spectral adjustment for IKONOS
    imagery. IEEE Geoscience and Remote Sensing Letters 1(4), 309-312.

    Generalised to N bands with equal weights: ``I = mean of the bands``,
    ``F_k = MS_k + (PAN' - I)``, where PAN' is the PAN mean/std-matched to I (global
    statistics). The same detail is added to every band. A PAN equal to I (or any
    increasing affine function of it) gives back ``ms_up``. Pan convention (module
    docstring); values are not clipped.
    """
    ms, pan = _pan_pair(ms_up, pan)
    intensity = ms.mean(axis=2)
    pan_matched = _mean_std_match(pan, intensity)
    return (ms + (pan_matched - intensity)[:, :, None]).astype(np.float32)


def brovey(ms_up: np.ndarray, pan: np.ndarray) -> np.ndarray:
    """Brovey transform (colour-normalised ratio) pan-sharpening.

    Gillespie, A. R., Kahle, A. B. and Walker, R. E. (1987). Color enhancement of highly
    correlated images. II. Channel ratio and "chromaticity" transformation techniques.
    Remote Sensing of Environment 22(3), 343-365.

    ``F_k = MS_k * PAN' / I`` with ``I`` the mean of the N bands and PAN' the PAN
    mean/std-matched to I, so every band is scaled by the same factor and the band
    ratios of ``ms_up`` are kept. Safe division: where ``I`` is not positive (black or
    bicubic undershoot) the factor is 1 (the pixel is left as it is); a negative
    factor (PAN' below 0 after matching) is clipped to 0, since it would flip the sign
    of every band. Pan convention (module docstring); values are not clipped.
    """
    ms, pan = _pan_pair(ms_up, pan)
    intensity = ms.mean(axis=2)
    pan_matched = _mean_std_match(pan, intensity)
    positive = intensity > 0
    gain = np.where(positive, pan_matched / np.where(positive, intensity, 1.0), 1.0)
    return (ms * np.maximum(gain, 0.0)[:, :, None]).astype(np.float32)


# -------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class Baseline:
    """One classical method: registry key, display name, paper, tasks and function.

    ``kind`` says which signature ``fn`` has (module docstring): ``"gray"`` methods
    fuse two gray images (the task pipelines apply them to Y, PET intensity or each
    band exactly as they apply PMGI); ``"pan"`` methods take all upsampled MS bands
    and the PAN at once.
    """

    key: str
    name: str
    citation: str
    tasks: tuple[str, ...]
    kind: Literal["gray", "pan"]
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.fn(a, b)


BASELINES: dict[str, Baseline] = {
    m.key: m
    for m in (
        Baseline("average", "Average", "pixel-wise mean of the two sources", TASK_NAMES,
                 "gray", average),
        Baseline("rolp", "Ratio of low-pass pyramid",
                 "Toet, Pattern Recognition Letters 9(4), 1989", ("ir-vis",), "gray",
                 ratio_pyramid),
        Baseline("laplacian", "Laplacian pyramid",
                 "Burt & Adelson, IEEE Trans. Communications 31(4), 1983", ("ir-vis",), "gray",
                 laplacian_pyramid),
        Baseline("mertens", "Exposure fusion (Mertens)",
                 "Mertens, Kautz & Van Reeth, Pacific Graphics 2007", ("multi-exposure",),
                 "gray", exposure_fusion),
        Baseline("pca", "PCA weighted average",
                 "Naidu & Raol, Defence Science Journal 58(3), 2008", ("medical",), "gray",
                 pca_fusion),
        Baseline("dwt", "Discrete wavelet transform (db2, 3 levels)",
                 "Li, Manjunath & Mitra, Graphical Models and Image Processing 57(3), 1995",
                 ("medical",), "gray", dwt_fusion),
        Baseline("dct-var", "DCT + variance + consistency verification",
                 "Haghighat, Aghagolzadeh & Seyedarabi, Computers & Electrical Engineering "
                 "37(5), 2011", ("multi-focus",), "gray", dct_variance),
        Baseline("gff", "Guided filtering fusion",
                 "Li, Kang & Hu, IEEE Trans. Image Processing 22(7), 2013", ("multi-focus",),
                 "gray", guided_filter_fusion),
        Baseline("pca-cs", "PCA component substitution",
                 "Chavez, Sides & Anderson, PE&RS 57(3), 1991", ("pan-sharpening",), "pan",
                 pca_pansharpen),
        Baseline("fihs", "Fast IHS",
                 "Tu, Huang, Hung & Chang, IEEE GRSL 1(4), 2004", ("pan-sharpening",), "pan",
                 fast_ihs),
        Baseline("brovey", "Brovey transform",
                 "Gillespie, Kahle & Walker, Remote Sensing of Environment 22(3), 1987",
                 ("pan-sharpening",), "pan", brovey),
    )
}


def baselines_for(task: str) -> list[Baseline]:
    """The baselines of one task, ``average`` first; unknown tasks raise PmgiError."""
    name = get_task(task).name
    return [m for m in BASELINES.values() if name in m.tasks]


def get_baseline(key: str) -> Baseline:
    try:
        return BASELINES[key]
    except KeyError:
        raise PmgiError(f"unknown baseline {key!r}; choose one of {', '.join(BASELINES)}") from None
