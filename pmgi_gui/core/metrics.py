"""Image-fusion quality metrics, written from the benchmarks' definitions.

Every metric is a plain function of ``(a, b, f)`` (two sources and the fused
image) or of ``f`` alone. Inputs are 2-D gray images holding values 0..255 in any
numeric dtype; nothing is rescaled to 0..1. Invalid input (not 2-D, shapes that
differ, NaN or infinite values) raises :class:`ValueError`.

Three families, each reproducing one reference implementation:

* the VIFB benchmark's MATLAB files (Zhang et al., CVPRW 2020): EN, SD, SF, AG,
  EI, MI, CE, PSNR, RMSE, SSIM, Qabf, Qcb, Qcv;
* the MEFB benchmark's MATLAB files (Zhang, Information Fusion 2021): NMI, VIF
  and FMI (with raw-pixel features, ``FMI_pixel``);
* the Python ``Evaluator`` of MMIF-CDDFuse: CC, SCD and every ``*_cddfuse`` key.
  Those read images as float32 and compute in float32 where NumPy keeps float32;
  the functions here do the same so that they agree to float32 round-off.

The same name can mean different numbers in the two families (MI in nats and
summed over the sources; SSIM summed, so its perfect value is 2; SF and AG with
other divisors), so the registry :data:`METRICS` records each key's convention.

``FMI`` in the paper's tables is reported here as ``FMI_pixel``: the MEFB default
feature is a binary Sobel edge map from MATLAB's ``edge()``, whose thinning rule
other implementations (Octave included) do not reproduce, so the edge variant
cannot be matched to a reference; the raw-pixel variant runs the same code path
and is reproducible bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
from scipy import ndimage
from skimage.metrics import structural_similarity

from . import pansharpening_metrics as _pan

__all__ = [
    "Metric",
    "METRICS",
    "TASK_METRICS",
    "compute",
    "task_metrics",
    # VIFB / MEFB
    "entropy",
    "standard_deviation",
    "spatial_frequency",
    "average_gradient",
    "edge_intensity",
    "mutual_information",
    "cross_entropy",
    "psnr",
    "rmse",
    "ssim",
    "q_abf",
    "q_cb",
    "q_cv",
    "nmi",
    "vif",
    "fmi_pixel",
    # CDDFuse
    "correlation_coefficient",
    "scd",
    "entropy_cddfuse",
    "standard_deviation_cddfuse",
    "spatial_frequency_cddfuse",
    "average_gradient_cddfuse",
    "mutual_information_cddfuse",
    "mse_cddfuse",
    "psnr_cddfuse",
    "vif_cddfuse",
    "q_abf_cddfuse",
    "ssim_cddfuse",
]


# --------------------------------------------------------------------------
# input checks and shared helpers


def _image(x, name: str = "f") -> np.ndarray:
    """``x`` as a float64 2-D array, or ValueError."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D gray image, got an array of shape {arr.shape}")
    return _pan.real_float64(arr, name)


def _triple(a, b, f) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b, f = _image(a, "a"), _image(b, "b"), _image(f, "f")
    if not (a.shape == b.shape == f.shape):
        raise ValueError(f"shape mismatch: a {a.shape}, b {b.shape}, f {f.shape}; all three must be equal")
    return a, b, f


def _min_size(x: np.ndarray, size: int, metric: str) -> None:
    if min(x.shape) < size:
        raise ValueError(f"{metric} needs images of at least {size} x {size} pixels, got {x.shape}")


def _f32(x: np.ndarray) -> np.ndarray:
    """The float32 image CDDFuse's Evaluator works on."""
    return x.astype(np.float32)


def _round_half_up(x: np.ndarray) -> np.ndarray:
    """MATLAB ``round`` for non-negative values: floor(x + 0.5) (not half-to-even)."""
    return np.floor(x + 0.5)


def _gray_levels(x: np.ndarray, name: str) -> np.ndarray:
    """Integer bins 0..255 of a gray image (values floored, as MATLAB's histogram loops do)."""
    levels = np.floor(x)
    if levels.min() < 0 or levels.max() > 255:
        raise ValueError(f"{name}: gray values must lie in 0..255 (got {x.min()}..{x.max()})")
    return levels.astype(np.intp)


# np.bincount holds the GIL: on a 16-megapixel image one call keeps the window's GUI
# thread waiting for tens of milliseconds, so large inputs are counted in chunks (the
# counts add up exactly).
_BINCOUNT_CHUNK = 1 << 20


def _bincount(idx: np.ndarray, minlength: int) -> np.ndarray:
    flat = idx.ravel()
    counts = np.zeros(minlength, np.intp)
    for start in range(0, flat.size, _BINCOUNT_CHUNK):
        part = np.bincount(flat[start:start + _BINCOUNT_CHUNK], minlength=minlength)
        if part.size > counts.size:
            counts = np.concatenate([counts, np.zeros(part.size - counts.size, np.intp)])
        counts[:part.size] += part
    return counts


def _histogram(x: np.ndarray, name: str) -> np.ndarray:
    return _bincount(_gray_levels(x, name), 256)


def _shannon(p: np.ndarray, log=np.log2) -> float:
    """-sum p log p over p > 0."""
    p = p[p > 0]
    return float(-np.sum(p * log(p)))


def _normalize1(x: np.ndarray) -> np.ndarray:
    """VIFB/MEFB ``normalize1``: stretch to 0..255 and round half up.

    An all-zero image is returned unchanged. A constant non-zero image, for which
    the reference divides 0 by 0, is mapped to zeros here.
    """
    lo, hi = x.min(), x.max()
    if hi == lo:
        return np.zeros_like(x)
    return _round_half_up((x - lo) / (hi - lo) * 255)


def _fspecial_gaussian_1d(size: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB's ``fspecial('gaussian', size, sigma)``.

    The 2-D kernel is the outer product of this vector with itself (to round-off);
    for the sizes used here no entry falls under fspecial's eps*max cut.
    """
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _filter_same(x: np.ndarray, k1: np.ndarray, mode: str = "constant") -> np.ndarray:
    """Separable filtering with a symmetric 1-D kernel, same size output."""
    y = ndimage.correlate1d(x, k1, axis=0, mode=mode)
    return ndimage.correlate1d(y, k1, axis=1, mode=mode)


def _filter_valid(x: np.ndarray, k1: np.ndarray) -> np.ndarray:
    """Separable filtering keeping only the fully overlapping ('valid') part."""
    r = (len(k1) - 1) // 2
    y = _filter_same(x, k1, mode="nearest")
    return y[r : y.shape[0] - r, r : y.shape[1] - r]


def _gradient(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``gradient`` with unit spacing: (gx along columns, gy along rows)."""
    gy, gx = np.gradient(x)
    return gx, gy


# --------------------------------------------------------------------------
# VIFB / MEFB: statistics of the fused image only


def entropy(f) -> float:
    """EN, Shannon entropy of the fused image, in bits. Higher is better.

    256-bin histogram with bin = gray value (values floored, must lie in 0..255),
    p = count / N, EN = -sum p log2 p. Follows VIFB ``metricsEntropy.m``.
    """
    f = _image(f)
    return _shannon(_histogram(f, "f") / f.size)


def standard_deviation(f) -> float:
    """SD, population standard deviation of F (divide by N). Higher is better.

    Follows VIFB ``metricsVariance.m`` (which, despite its name, returns the square
    root). Values 0..255.
    """
    f = _image(f)
    return float(np.sqrt(np.mean((f - f.mean()) ** 2)))


def spatial_frequency(f) -> float:
    """SF, spatial frequency of F. Higher is better.

    sqrt(RF + CF) where RF, CF are the sums of squared horizontal / vertical
    neighbour differences, both divided by N = H*W (not by the number of
    differences). Follows VIFB ``metricsSpatial_frequency.m``.
    """
    f = _image(f)
    rf = np.sum(np.diff(f, axis=1) ** 2) / f.size
    cf = np.sum(np.diff(f, axis=0) ** 2) / f.size
    return float(np.sqrt(rf + cf))


def average_gradient(f) -> float:
    """AG (the paper's MG), average gradient of F. Higher is better.

    MATLAB ``gradient`` (central differences inside, one-sided at the border),
    s = sqrt((gx^2 + gy^2) / 2) at every pixel, AG = sum(s) / ((H-1)(W-1)).
    Follows VIFB ``metricsAvg_gradient.m``.
    """
    f = _image(f)
    _min_size(f, 2, "AG")
    gx, gy = _gradient(f)
    s = np.sqrt((gx * gx + gy * gy) / 2)
    return float(np.sum(s) / ((f.shape[0] - 1) * (f.shape[1] - 1)))


_SOBEL_EI = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])


def edge_intensity(f) -> float:
    """EI, edge intensity: mean Sobel gradient magnitude of F. Higher is better.

    Sobel kernels with replicate border padding, same-size output. Follows VIFB
    ``metricsEdge_intensity.m``.
    """
    f = _image(f)
    gx = ndimage.correlate(f, _SOBEL_EI, mode="nearest")
    gy = ndimage.correlate(f, _SOBEL_EI.T, mode="nearest")
    return float(np.mean(np.sqrt(gx * gx + gy * gy)))


# --------------------------------------------------------------------------
# VIFB / MEFB: information-theoretic measures


def _stretch_index(x: np.ndarray) -> np.ndarray:
    """VIFB MI binning: min-max stretch to 0..1, then round(255 * x) half up."""
    lo, hi = x.min(), x.max()
    y = (x - lo) / (hi - lo) if hi != lo else np.zeros_like(x)
    return _round_half_up(y * 255).astype(np.intp)


def _joint_counts(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """256 x 256 joint histogram of two index images (values 0..255)."""
    return _bincount(x * 256 + y, 256 * 256).reshape(256, 256)


def _mutual_information_terms(x: np.ndarray, y: np.ndarray, log) -> tuple[float, float, float]:
    """(H_x, H_y, MI) from the joint histogram of two index images."""
    n = x.size
    joint = _joint_counts(x, y)
    hx = _shannon(joint.sum(axis=1) / n, log)
    hy = _shannon(joint.sum(axis=0) / n, log)
    hxy = _shannon(joint.ravel() / n, log)
    return hx, hy, hx + hy - hxy


def mutual_information(a, b, f) -> float:
    """MI, mutual information in NATS, summed: MI(A, F) + MI(B, F). Higher is better.

    Each image is min-max stretched to 0..1 and binned as round(255 x) (half up);
    MI from the 256 x 256 joint histogram with natural logarithms. Follows VIFB
    ``metricsMutinf.m``. (Tables that quote MI in bits or averaged over the two
    sources differ by a factor ln 2 or 2.)
    """
    a, b, f = _triple(a, b, f)
    fi = _stretch_index(f)
    return float(
        _mutual_information_terms(_stretch_index(a), fi, np.log)[2]
        + _mutual_information_terms(_stretch_index(b), fi, np.log)[2]
    )


def cross_entropy(a, b, f) -> float:
    """CE, cross entropy in bits, averaged over the sources. Lower is better.

    CE(X, F) = sum over gray levels where both histograms are non-zero of
    p_X log2(p_X / p_F) (a KL divergence restricted to the common support);
    CE = (CE(A, F) + CE(B, F)) / 2. Follows VIFB ``metricsCross_entropy.m``.
    """
    a, b, f = _triple(a, b, f)
    pf = _histogram(f, "f") / f.size

    def one(x, name):
        px = _histogram(x, name) / x.size
        m = (px > 0) & (pf > 0)
        return np.sum(px[m] * np.log2(px[m] / pf[m]))

    return float((one(a, "a") + one(b, "b")) / 2)


def nmi(a, b, f) -> float:
    """NMI, Hossny's normalised mutual information, range 0..2. Higher is better.

    A, B, F go through ``normalize1`` (stretch to 0..255, MATLAB rounding);
    NMI = 2 (MI(A,F) / (H_A + H_F) + MI(B,F) / (H_B + H_F)), log base cancels
    (log2 used). Follows MEFB ``metricsNMI.m``.
    """
    a, b, f = _triple(a, b, f)
    a1, b1, f1 = (_normalize1(x).astype(np.intp) for x in (a, b, f))
    ha, hfa, mia = _mutual_information_terms(a1, f1, np.log2)
    hb, hfb, mib = _mutual_information_terms(b1, f1, np.log2)
    return float(2 * (mia / (ha + hfa) + mib / (hb + hfb)))


# --------------------------------------------------------------------------
# VIFB: error measures


def _vifb_error(x: np.ndarray, f: np.ndarray) -> float:
    """VIFB's "mse": the L2 norm of the difference divided by the pixel count."""
    return float(np.sqrt(np.sum((x - f) ** 2)) / x.size)


def rmse(a, b, f) -> float:
    """RMSE as VIFB computes it (non-standard). Lower is better.

    e(X, F) = sqrt(sum (X - F)^2) / N (an L2 norm over N, NOT a root mean square);
    RMSE = (e(A, F) + e(B, F)) / 2. Follows VIFB ``metricsRmse.m``.
    """
    a, b, f = _triple(a, b, f)
    return (_vifb_error(a, f) + _vifb_error(b, f)) / 2


def psnr(a, b, f) -> float:
    """PSNR in dB as VIFB computes it (non-standard). Higher is better.

    PSNR = 20 log10(255 / sqrt(RMSE)) with VIFB's RMSE (see :func:`rmse`), peak
    255. +inf when F equals both sources. Follows VIFB ``metricsPsnr.m``.
    """
    a, b, f = _triple(a, b, f)
    e = (_vifb_error(a, f) + _vifb_error(b, f)) / 2
    if e == 0:
        return math.inf
    return float(20 * np.log10(255 / np.sqrt(e)))


# --------------------------------------------------------------------------
# VIFB: structural / gradient measures


def _ssim_vifb(x: np.ndarray, f: np.ndarray) -> float:
    k = _fspecial_gaussian_1d(11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_f = _filter_valid(x, k), _filter_valid(f, k)
    s_x = _filter_valid(x * x, k) - mu_x * mu_x
    s_f = _filter_valid(f * f, k) - mu_f * mu_f
    s_xf = _filter_valid(x * f, k) - mu_x * mu_f
    ssim_map = ((2 * mu_x * mu_f + c1) * (2 * s_xf + c2)) / ((mu_x * mu_x + mu_f * mu_f + c1) * (s_x + s_f + c2))
    return float(np.mean(ssim_map))


def ssim(a, b, f) -> float:
    """SSIM, SUMMED over the sources: SSIM(A, F) + SSIM(B, F), perfect = 2. Higher is better.

    11 x 11 Gaussian window (sigma 1.5), 'valid' filtering, C1 = (0.01*255)^2,
    C2 = (0.03*255)^2, mean of the map. Follows VIFB ``metricsSsim.m``.
    """
    a, b, f = _triple(a, b, f)
    _min_size(f, 11, "SSIM")
    return _ssim_vifb(a, f) + _ssim_vifb(b, f)


_QABF_HX = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_QABF_HY = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
_TG, _KG, _DG = 0.9994, -15.0, 0.5
_TA, _KA, _DA = 0.9879, -22.0, 0.8


def _qabf_edges(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel magnitude and plain-arctan orientation (pi/2 where Sx == 0)."""
    sx = ndimage.convolve(x, _QABF_HX, mode="constant", cval=0.0)
    sy = ndimage.convolve(x, _QABF_HY, mode="constant", cval=0.0)
    g = np.sqrt(sx * sx + sy * sy)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(sx == 0, np.asarray(np.pi / 2, x.dtype), np.arctan(sy / sx))
    return g, alpha.astype(x.dtype, copy=False)


def _qabf_preservation(gx, ax, gf, af) -> np.ndarray:
    """Q^XF per pixel: edge-strength and orientation preservation (sigmoids)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(gx > gf, gf / gx, np.where(gx < gf, gx / gf, gf))
    ratio = ratio.astype(gx.dtype, copy=False)
    angle = 1 - np.abs(ax - af) / (math.pi / 2)
    q_g = _TG / (1 + np.exp(_KG * (ratio - _DG)))
    q_a = _TA / (1 + np.exp(_KA * (angle - _DA)))
    return q_g * q_a


def _qabf(a, b, f) -> float:
    ga, aa = _qabf_edges(a)
    gb, ab = _qabf_edges(b)
    gf, af = _qabf_edges(f)
    q_af = _qabf_preservation(ga, aa, gf, af)
    q_bf = _qabf_preservation(gb, ab, gf, af)
    return float(np.sum(q_af * ga + q_bf * gb) / np.sum(ga + gb))


def q_abf(a, b, f) -> float:
    """Q^AB/F (Xydeas & Petrovic), gradient-information preservation, 0..1. Higher is better.

    Sobel gradients (zero padding), Tg = 0.9994, kg = -15, Dg = 0.5, Ta = 0.9879,
    ka = -22, Da = 0.8. Follows VIFB ``metricsQabf.m`` (MEFB's copy is the same),
    including its quirks: the images are multiplied by 255 first (0..65025), the
    orientation is the plain arctan(Sy/Sx) (pi/2 where Sx = 0), and where the
    source and fused gradient magnitudes are equal the "ratio" is the magnitude
    itself rather than 1 (so Q_g is Tg there, except where both are 0).
    """
    a, b, f = _triple(a, b, f)
    return _qabf(255 * a, 255 * b, 255 * f)


# --------------------------------------------------------------------------
# VIFB: human-perception measures (Chen-Blum, Chen-Varshney)


def _freqspace_radius(shape: tuple[int, int], scale: float) -> np.ndarray:
    """Radial frequency of MATLAB ``freqspace(shape, 'meshgrid')``, axes times n/scale.

    Zero frequency at index (floor(H/2), floor(W/2)), i.e. the fftshift-ed layout.
    """
    h, w = shape
    fu = (np.arange(w) - w // 2) * (2 / w)
    fv = (np.arange(h) - h // 2) * (2 / h)
    u = (w / scale) * fu
    v = (h / scale) * fv
    return np.sqrt(u[None, :] ** 2 + v[:, None] ** 2)


def _csf_filter(x: np.ndarray, response: np.ndarray) -> np.ndarray:
    """ifft2(ifftshift(fftshift(fft2(x)) * response)), kept complex as the reference does."""
    return np.fft.ifft2(np.fft.fft2(x) * np.fft.ifftshift(response))


def _qcb_gaussian_1d(sigma: float) -> np.ndarray:
    """1-D factor of exp(-(x^2 + y^2) / (2 s^2)) / (2 pi s^2) on -15..15 (not renormalised)."""
    x = np.arange(-15, 16, dtype=np.float64)
    return np.exp(-(x * x) / (2 * sigma * sigma)) / (math.sqrt(2 * math.pi) * sigma)


def _qcb_masked_contrast(x: np.ndarray, csf: np.ndarray) -> np.ndarray:
    xf = _csf_filter(x, csf)
    g1 = _filter_same(xf, _qcb_gaussian_1d(2.0))
    g2 = _filter_same(xf, _qcb_gaussian_1d(4.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.abs(g1 / g2 - 1)
        return c**3 / (c**2 + 1e-4)


def q_cb(a, b, f) -> float:
    """Qcb (Chen & Blum), perceptual contrast preservation, 0..1. Higher is better.

    normalize1 (MATLAB rounding), CSF S(r) = exp(-(r/15.3870)^2) -
    0.7622 exp(-(r/1.3456)^2) applied in the frequency domain (result kept
    complex), local contrast |G1 * I / G2 * I - 1| with 31 x 31 Gaussians
    (sigma 2 and 4, zero padding), masked contrast C^3 / (C^2 + 1e-4), then the
    saliency-weighted mean of the preservation ratios. Follows VIFB ``metricsQcb.m``.

    Reproducible to ~1e-12 on textured images. In large exactly-constant areas
    (the black background of MRI/PET slices) the filtered image is FFT round-off
    and the contrast ratio is a ratio of noise, so implementations disagree there
    (the reference notes 1e-3 to 2e-2 between any two, MATLAB vs Octave included):
    measured against the Octave reference on the shared MRI/PET triples the
    difference is up to 3.2e-3 relative (mripet_21/maxabs); elsewhere <= 1e-9.
    """
    a, b, f = _triple(a, b, f)
    csf_r = _freqspace_radius(f.shape, 30.0)
    csf = np.exp(-((csf_r / 15.3870) ** 2)) - 0.7622 * np.exp(-((csf_r / 1.3456) ** 2))
    cp_a = _qcb_masked_contrast(_normalize1(a), csf)
    cp_b = _qcb_masked_contrast(_normalize1(b), csf)
    cp_f = _qcb_masked_contrast(_normalize1(f), csf)
    with np.errstate(divide="ignore", invalid="ignore"):
        q_af = np.where(cp_a < cp_f, cp_a / cp_f, cp_f / cp_a)
        q_bf = np.where(cp_b < cp_f, cp_b / cp_f, cp_f / cp_b)
        denom = cp_a**2 + cp_b**2
        lam_a = cp_a**2 / denom
        lam_b = cp_b**2 / denom
    return float(np.mean(lam_a * q_af + lam_b * q_bf))


_QCV_KX = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_QCV_KY = _QCV_KX.T.copy()


def _block_sums(x: np.ndarray, block: int) -> np.ndarray:
    """Sums over non-overlapping block x block tiles, zero-padding bottom/right (blkproc)."""
    h, w = x.shape
    ph, pw = -h % block, -w % block
    if ph or pw:
        x = np.pad(x, ((0, ph), (0, pw)))
    return x.reshape(x.shape[0] // block, block, x.shape[1] // block, block).sum(axis=(1, 3))


def q_cv(a, b, f) -> float:
    """Qcv (Chen & Varshney), perceptual difference, >= 0. LOWER is better.

    normalize1 (MATLAB rounding); saliency per 16 x 16 block = sum of Sobel
    magnitude^5 of the source; the source-minus-fused difference filtered with the
    Mannos-Sakrison CSF (complex result kept); per block the mean of its complex
    square; Qcv = real(sum(lambda_A D_A + lambda_B D_B) / sum(lambda_A + lambda_B)).
    Partial edge blocks are zero-padded (MATLAB blkproc). Follows VIFB ``metricsQcv.m``.
    """
    a, b, f = _triple(a, b, f)
    a1, b1, f1 = _normalize1(a), _normalize1(b), _normalize1(f)
    r = _freqspace_radius(f.shape, 8.0)
    csf = 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))

    def saliency(x):
        gx = ndimage.correlate(x, _QCV_KX, mode="constant", cval=0.0)
        gy = ndimage.correlate(x, _QCV_KY, mode="constant", cval=0.0)
        return _block_sums(np.sqrt(gx * gx + gy * gy) ** 5, 16)

    def distortion(x):
        d = _csf_filter(x - f1, csf)
        return _block_sums(d * d, 16) / 256

    lam_a, lam_b = saliency(a1), saliency(b1)
    q = np.sum(lam_a * distortion(a1) + lam_b * distortion(b1)) / np.sum(lam_a + lam_b)
    return float(np.real(q))


# --------------------------------------------------------------------------
# VIF: MEFB (Han et al. 2013) and CDDFuse (Sheikh & Bovik pixel domain)


def _vif_scales(ref: np.ndarray, dist: np.ndarray):
    """Yield (g, sigma1_sq, sv_sq) per scale (4 scales) after the reference clamping.

    The Gaussian windows are applied separably ('valid' part only), which is 20x
    faster than 2-D direct convolution and differs from it by round-off only.
    """
    eps = 1e-10
    for scale in range(1, 5):
        n = 2 ** (5 - scale) + 1
        win = _fspecial_gaussian_1d(n, n / 5)
        if scale > 1:
            ref = _filter_valid(ref, win)[::2, ::2]
            dist = _filter_valid(dist, win)[::2, ::2]
        if min(ref.shape) < n:
            raise ValueError("VIF needs images of at least 41 x 41 pixels")
        mu1 = _filter_valid(ref, win)
        mu2 = _filter_valid(dist, win)
        sigma1_sq = _filter_valid(ref * ref, win) - mu1 * mu1
        sigma2_sq = _filter_valid(dist * dist, win) - mu2 * mu2
        sigma12 = _filter_valid(ref * dist, win) - mu1 * mu2
        sigma1_sq[sigma1_sq < 0] = 0
        sigma2_sq[sigma2_sq < 0] = 0
        g = sigma12 / (sigma1_sq + eps)
        sv_sq = sigma2_sq - g * sigma12
        low1 = sigma1_sq < eps
        g[low1] = 0
        sv_sq[low1] = sigma2_sq[low1]
        sigma1_sq[low1] = 0
        low2 = sigma2_sq < eps
        g[low2] = 0
        sv_sq[low2] = 0
        neg = g < 0
        sv_sq[neg] = sigma2_sq[neg]
        g[neg] = 0
        sv_sq[sv_sq <= eps] = eps
        yield g, sigma1_sq, sv_sq


def _fspecial_gaussian_2d(size: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``."""
    half = (size - 1) / 2
    y, x = np.ogrid[-half : half + 1, -half : half + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h / h.sum()


_VIF_WEIGHTS = np.array([1.0, 0.0, 0.15, 1.0]) / 2.15


def vif(a, b, f) -> float:
    """VIF for fusion (Han, Cai, Cao, Xu 2013, "VIFF"), MEFB variant. Higher is better.

    Four scales (Gaussian windows 17, 9, 5, 3, sigma = N/5, 'valid' filtering,
    dyadic downsampling), visual noise variance 0.005 * 255^2; per pixel the maps
    of the source with the larger gain g are used (ties -> B); per-scale ratios
    sum(VID + 1e-7) / sum(VIND + 1e-7) combined with weights [1, 0, 0.15, 1] / 2.15.
    log10. Follows MEFB ``metricsVIF.m``.

    Fragile by construction: local variances E[x^2] - E[x]^2 are compared with
    1e-10, so in flat (saturated or constant) areas round-off decides a branch;
    expect up to ~1e-4 relative difference between implementations there.
    Measured against the Octave reference: <= 1e-9 on the shared triples except
    mefb_Candle (up to 2.2e-6). Windows applied separably.
    """
    a, b, f = _triple(a, b, f)
    sq = 0.005 * 255 * 255
    c = 1e-7
    total = 0.0
    for s, (sa, sb) in enumerate(zip(_vif_scales(a, f), _vif_scales(b, f))):
        maps = []
        for g, sigma1_sq, sv_sq in (sa, sb):
            vid = np.log10(1 + g * g * sigma1_sq / (sv_sq + sq))
            vind = np.log10(1 + sigma1_sq / sq)
            maps.append((g, vid, vind))
        (ga, vid_a, vind_a), (gb, vid_b, vind_b) = maps
        use_a = ga < gb
        vid = np.where(use_a, vid_a, vid_b)
        vind = np.where(use_a, vind_a, vind_b)
        total += _VIF_WEIGHTS[s] * (np.sum(vid + c) / np.sum(vind + c))
    return float(total)


# --------------------------------------------------------------------------
# FMI (MEFB / Haghighat & Razian fast-FMI) with raw-pixel features


def _seq_sum(x: np.ndarray) -> np.ndarray:
    """Sum over axis 0 strictly in order (MATLAB's summation order for short vectors)."""
    s = x[0].copy()
    for k in range(1, x.shape[0]):
        s += x[k]
    return s


def _normalise_windows(w: np.ndarray) -> np.ndarray:
    """Each window (column of a 9 x n array) stretched to [0, 1]; all ones if constant."""
    lo = w.min(axis=0)
    hi = w.max(axis=0)
    span = hi - lo
    flat = span == 0
    out = (w - lo) / np.where(flat, 1.0, span)
    out[:, flat] = 1.0
    return out


_FMI_IDX = np.arange(1, 10, dtype=np.float64)[:, None]
_TINY = np.finfo(np.float64).tiny
_FMI_CHUNK = 4096  # windows per vectorised batch: 9 x 9 x 4096 doubles stay cache-sized


def _window_entropy(p: np.ndarray) -> np.ndarray:
    """-sum p log2 p over non-zero p, per column of a 9 x n array, summed in order."""
    t = np.zeros_like(p)
    np.log2(p, out=t, where=p != 0)
    t *= p
    return -_seq_sum(t)


def _joint_entropy(fc, xc, fp, xp, c, sd_f, sd_x, upper: bool) -> np.ndarray:
    """Entropy of the fast-FMI joint distribution for windows whose correlation has one sign.

    9 x 9 x n arrays, rows i indexing the fused CDF and columns j the source CDF.
    The Frechet bound (upper min(x, y) for c >= 0, lower max(x + y - 1, 0) for
    c < 0) is mixed with the independent joint so that the correlation is c.
    """
    n = c.shape[0]
    fci, xcj = fc[:, None, :], xc[None, :, :]
    bound = np.add(fci, xcj)
    t = np.empty_like(bound)
    if upper:  # 0.5 (x + y - |x - y|)
        np.subtract(fci, xcj, out=t)
        np.abs(t, out=t)
        bound -= t
    else:  # 0.5 (x + y - 1 + |x + y - 1|)
        bound -= 1
        np.abs(bound, out=t)
        bound += t
    bound *= 0.5
    # sum(sum(bound - F_i A_j)) as MATLAB does: column sums over i, then over j
    np.multiply(fci, xcj, out=t)
    np.subtract(bound, t, out=t)
    cov_bound = _seq_sum(_seq_sum(t))
    degenerate = (c == 0) | (sd_x == 0) | (sd_f == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(degenerate, 0.0, c / (cov_bound / (sd_f * sd_x)))
    # cell masses of the bound: M(i,j) - M(i-1,j) - M(i,j-1) + M(i-1,j-1)
    np.copyto(t, bound)
    t[1:, :] -= bound[:-1, :]
    t[:, 1:] -= bound[:, :-1]
    t[1:, 1:] += bound[:-1, :-1]
    t *= weight
    np.multiply(fp[:, None, :], xp[None, :, :], out=bound)
    bound *= 1 - weight
    t += bound  # the joint pdf J (may hold tiny negative cells)
    # log2 of |J|, with empty cells lifted to the smallest normal number so that
    # their term J log2|J| is 0 * finite = 0 (a plain, fast log2 over all cells)
    np.abs(t, out=bound)
    np.maximum(bound, _TINY, out=bound)
    np.log2(bound, out=bound)
    bound *= t
    # -sum J log2|J| over the 81 cells in column-major order (j outer, i inner)
    total = np.zeros(n)
    for j in range(9):
        for i in range(9):
            total += bound[i, j]
    return -total


def _fmi_windows(x: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """fmi of source windows x (9 x n, already normalised) against fused windows fn."""
    xp = x / _seq_sum(x)
    fp = fn / _seq_sum(fn)
    xc = np.cumsum(xp, axis=0)
    fc = np.cumsum(fp, axis=0)

    xt = xp - _seq_sum(xp) / 9
    ft = fp - _seq_sum(fp) / 9
    cov = _seq_sum(xt * ft)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(cov == 0, 0.0, cov / np.sqrt(_seq_sum(xt * xt) * _seq_sum(ft * ft)))

    sd_x = np.sqrt(_seq_sum(_FMI_IDX**2 * xp) - _seq_sum(_FMI_IDX * xp) ** 2)
    sd_f = np.sqrt(_seq_sum(_FMI_IDX**2 * fp) - _seq_sum(_FMI_IDX * fp) ** 2)

    h_joint = np.empty(c.shape[0])
    for upper in (True, False):
        sel = (c >= 0) if upper else (c < 0)
        if np.any(sel):
            h_joint[sel] = _joint_entropy(
                fc[:, sel], xc[:, sel], fp[:, sel], xp[:, sel], c[sel], sd_f[sel], sd_x[sel], upper
            )
    h_x = _window_entropy(xp)
    h_f = _window_entropy(fp)
    mi = h_x + h_f - h_joint
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mi == 0, 0.0, 2 * mi / (h_x + h_f))


def _fmi_pair(x_raw: np.ndarray, f_in: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fmi, fused windows as left for the next pair) for one source."""
    same = np.all(x_raw == f_in, axis=0)
    out = np.ones(x_raw.shape[1])
    f_next = f_in.copy()
    todo = ~same
    if np.any(todo):
        fn = _normalise_windows(f_in[:, todo])
        out[todo] = _fmi_windows(_normalise_windows(x_raw[:, todo]), fn)
        f_next[:, todo] = fn
    return out, f_next


def _windows3(x: np.ndarray, rows: slice) -> np.ndarray:
    """3 x 3 windows centred on the given interior rows, flattened column-major: 9 x n."""
    v = np.lib.stride_tricks.sliding_window_view(x, (3, 3))[rows]
    # (r, q, 3 rows, 3 cols) -> (3 cols, 3 rows, r, q) -> 9 x n, row offset fastest
    return np.ascontiguousarray(v.transpose(3, 2, 0, 1)).reshape(9, -1)


def fmi_pixel(a, b, f) -> float:
    """FMI with raw-pixel features, 3 x 3 windows (fast-FMI, Haghighat & Razian 2014). Higher is better.

    For every interior pixel, the 3 x 3 windows of source and fused image
    (flattened column-major, as MATLAB does) are treated as distributions; their
    mutual information is estimated from a joint distribution built from the
    Frechet bound chosen by the sign of their correlation, normalised by
    (H_X + H_F) / 2. Identical windows score 1. Window score = (fmi_AF + fmi_BF) / 2,
    FMI = mean over windows; log2 (cancels). Follows MEFB ``metricsFMI.m`` with
    feature ``'none'`` and w = 3, including its quirk that the B test compares the
    raw B window with the fused window as normalised by the A pass.

    This stands in for the paper's FMI: MEFB's default 'edge' feature depends on
    MATLAB's ``edge()`` thinning, which no other implementation reproduces.
    """
    a, b, f = _triple(a, b, f)
    _min_size(f, 3, "FMI")
    n_rows = f.shape[0] - 2
    per_chunk = max(1, _FMI_CHUNK // (f.shape[1] - 2))
    total = 0.0
    for r0 in range(0, n_rows, per_chunk):
        rows = slice(r0, min(n_rows, r0 + per_chunk))
        fw = _windows3(f, rows)
        fmi_af, f_after = _fmi_pair(_windows3(a, rows), fw)
        fmi_bf, _ = _fmi_pair(_windows3(b, rows), f_after)
        total += np.sum((fmi_af + fmi_bf) / 2)
    return float(total / (n_rows * (f.shape[1] - 2)))


# --------------------------------------------------------------------------
# CDDFuse Evaluator (float32 inputs, float32 arithmetic where NumPy keeps it)


def _pearson32(x: np.ndarray, y: np.ndarray) -> np.float32:
    xd = x - np.mean(x)
    yd = y - np.mean(y)
    return np.sum(xd * yd) / np.sqrt(np.sum(xd**2) * np.sum(yd**2))


def correlation_coefficient(a, b, f) -> float:
    """CC, Pearson correlation averaged over the sources: (r(A,F) + r(B,F)) / 2. Higher is better.

    Pearson correlation over all pixels of the 0..255 images, range -1..1.
    Follows CDDFuse ``Evaluator.CC``, computed in float32 as it does (the shared
    reference values are matched bit for bit).
    """
    a, b, f = (_f32(x) for x in _triple(a, b, f))
    return float((_pearson32(a, f) + _pearson32(b, f)) / 2)


def scd(a, b, f) -> float:
    """SCD, sum of the correlations of differences: r(A, F - B) + r(B, F - A). Higher is better.

    Pearson correlations over all pixels of the 0..255 images, range -2..2.
    Follows CDDFuse ``Evaluator.SCD``, computed in float32 as it does.
    """
    a, b, f = (_f32(x) for x in _triple(a, b, f))
    return float(_pearson32(a, f - b) + _pearson32(b, f - a))


def entropy_cddfuse(f) -> float:
    """EN as CDDFuse ``Evaluator.EN`` computes it, in bits. Higher is better.

    F rounded to 0..255, 256-bin histogram (one bin per gray value); equal to
    :func:`entropy` on integer images.
    """
    f = _image(f)
    return entropy(np.round(f))


def standard_deviation_cddfuse(f) -> float:
    """SD as CDDFuse ``Evaluator.SD`` computes it. Higher is better.

    Population standard deviation (divide by N) of the 0..255 image, in float32.
    """
    return float(np.std(_f32(_image(f))))


def spatial_frequency_cddfuse(f) -> float:
    """SF as CDDFuse ``Evaluator.SF`` computes it, 0..255 image, float32. Higher is better.

    sqrt(mean of squared horizontal differences + mean of squared vertical
    differences), each mean over its own number of differences (unlike VIFB SF).
    """
    f = _f32(_image(f))
    _min_size(f, 2, "SF")
    return float(np.sqrt(np.mean((f[:, 1:] - f[:, :-1]) ** 2) + np.mean((f[1:, :] - f[:-1, :]) ** 2)))


def average_gradient_cddfuse(f) -> float:
    """AG as CDDFuse ``Evaluator.AG`` computes it, 0..255 image, float32. Higher is better.

    Mean over all H*W pixels of sqrt((gx^2 + gy^2) / 2).

    Same gradients as :func:`average_gradient`; only the divisor differs (H*W
    instead of (H-1)(W-1)).
    """
    f = _f32(_image(f))
    _min_size(f, 2, "AG")
    gy, gx = np.gradient(f)
    s = np.sqrt((np.square(gx) + np.square(gy)) / 2)
    return float(np.sum(s) / (f.shape[0] * f.shape[1]))


def _mi_exact_labels(x: np.ndarray, y: np.ndarray) -> float:
    """MI in nats of the contingency table of exact values (scikit-learn ``mutual_info_score``)."""
    _, xi = np.unique(x, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    xi, yi = xi.ravel(), yi.ravel()
    ny = int(yi.max()) + 1
    counts = np.bincount(xi * ny + yi).astype(np.float64)
    nz = np.nonzero(counts)[0]
    nij = counts[nz]
    ni = np.bincount(xi).astype(np.float64)[nz // ny]
    nj = np.bincount(yi).astype(np.float64)[nz % ny]
    n = float(x.size)
    mi = np.sum(nij / n * (np.log(nij) + math.log(n) - np.log(ni) - np.log(nj)))
    return max(float(mi), 0.0)


def mutual_information_cddfuse(a, b, f) -> float:
    """MI as CDDFuse ``Evaluator.MI`` computes it: NATS, SUMMED over the sources. Higher is better.

    MI of the exact-value contingency table (no min-max stretch or re-binning;
    every distinct value is its own label), as scikit-learn ``mutual_info_score``.
    On 8-bit images this equals :func:`mutual_information` up to round-off.
    """
    a, b, f = (_f32(x) for x in _triple(a, b, f))
    return _mi_exact_labels(f, a) + _mi_exact_labels(f, b)


def _mse32(a, b, f) -> np.float32:
    return (np.mean((a - f) ** 2) + np.mean((b - f) ** 2)) / 2


def mse_cddfuse(a, b, f) -> float:
    """MSE as CDDFuse ``Evaluator.MSE`` computes it. Lower is better.

    (mean((A - F)^2) + mean((B - F)^2)) / 2 on 0..255 values: a true mean squared
    error, averaged over the sources, in float32.
    """
    a, b, f = (_f32(x) for x in _triple(a, b, f))
    return float(_mse32(a, b, f))


def psnr_cddfuse(a, b, f) -> float:
    """PSNR as CDDFuse ``Evaluator.PSNR`` computes it, dB. Higher is better.

    10 log10(max(F)^2 / MSE_cddfuse) (log10; the MSE averaged over the sources),
    float32.

    The peak is the maximum of F, not 255. +inf when F equals both sources.
    """
    a, b, f = (_f32(x) for x in _triple(a, b, f))
    mse = _mse32(a, b, f)
    if mse == 0:
        return math.inf
    return float(10 * np.log10(np.max(f) ** 2 / mse))


def _vif_sheikh_bovik(ref: np.ndarray, dist: np.ndarray) -> float:
    num = den = 0.0
    for g, sigma1_sq, sv_sq in _vif_scales(ref, dist):
        num += np.sum(np.log10(1.0 + g * g * sigma1_sq / (sv_sq + 2.0)))
        den += np.sum(np.log10(1.0 + sigma1_sq / 2.0))
    value = num / den if den != 0 else math.nan
    return 1.0 if math.isnan(value) else float(value)


def vif_cddfuse(a, b, f) -> float:
    """VIF as CDDFuse computes it (``Evaluator.VIFF``): VIF(A, F) + VIF(B, F). Higher is better.

    Pixel-domain VIF of Sheikh & Bovik with noise variance 2, the same four scales
    and clamping as :func:`vif`, no source selection and no scale weights;
    1.0 where the ratio is NaN. SUMMED over the sources; log10 (cancels);
    0..255 images.

    The Gaussian windows are applied separably rather than by 2-D ``convolve2d``
    as the reference does (20x faster); measured against the shared reference
    values the difference is at most 7.4e-9 relative (mefb_Candle), from
    round-off deciding the 1e-10 variance thresholds in flat areas.
    """
    a, b, f = _triple(a, b, f)
    return _vif_sheikh_bovik(a, f) + _vif_sheikh_bovik(b, f)


def q_abf_cddfuse(a, b, f) -> float:
    """Q^AB/F as CDDFuse ``Evaluator.Qabf`` computes it, 0..1. Higher is better.

    :func:`q_abf` without the x255 scaling and with float32 gradient, angle and
    ratio arrays; where magnitudes are equal the ratio is the unscaled magnitude,
    so the value differs slightly from VIFB's.
    """
    a, b, f = (_f32(x) for x in _triple(a, b, f))
    return _qabf(a, b, f)


def ssim_cddfuse(a, b, f) -> float:
    """SSIM as CDDFuse ``Evaluator.SSIM`` computes it: SSIM(F, A) + SSIM(F, B), perfect = 2. Higher is better.

    scikit-image ``structural_similarity`` on float32 images with the semantics of
    scikit-image 0.19.2, which CDDFuse pins: 7 x 7 box window, sample covariance,
    and data_range = 2 (the float dtype range), i.e. C1 = (0.01*2)^2 and
    C2 = (0.03*2)^2 although the images hold 0..255.
    """
    a, b, f = (_f32(x) for x in _triple(a, b, f))
    _min_size(f, 7, "SSIM")
    return float(
        structural_similarity(f, a, data_range=2.0) + structural_similarity(f, b, data_range=2.0)
    )


# --------------------------------------------------------------------------
# registry


def _d_lambda(ms, pan, fused) -> float:
    """D_lambda with the (ms, pan, fused) signature of the QNR family; the PAN is not used."""
    return _pan.d_lambda(ms, fused)


@dataclass(frozen=True)
class Metric:
    """One metric: how to call it and how to read it.

    ``inputs`` says what the function takes: ``"f"`` (the fused image),
    ``"abf"`` (sources a, b and fused f), ``"ms_pan_fused"`` (low-resolution
    multispectral H/r x W/r x bands, PAN H x W, fused H x W x bands) or
    ``"reference_fused"`` (a reference multispectral image and the fused one).
    """

    key: str
    name: str
    function: Callable[..., float]
    higher_is_better: bool
    meaning: str
    convention: str
    inputs: str = "abf"


def _m(key, name, function, higher, meaning, convention, inputs="abf") -> Metric:
    return Metric(key, name, function, higher, meaning, convention, inputs)


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        _m("EN", "Entropy", entropy, True, "Information content of the fused image", "bits; fused only; VIFB", "f"),
        _m("SD", "Standard deviation", standard_deviation, True, "Contrast of the fused image", "population std, 0..255; VIFB", "f"),
        _m("SF", "Spatial frequency", spatial_frequency, True, "Overall activity of neighbour differences", "both sums / (H*W); VIFB", "f"),
        _m("AG", "Average gradient (MG)", average_gradient, True, "Sharpness: mean local gradient", "sum / ((H-1)(W-1)); VIFB", "f"),
        _m("EI", "Edge intensity", edge_intensity, True, "Mean Sobel edge strength", "replicate border; VIFB", "f"),
        _m("MI", "Mutual information", mutual_information, True, "Information carried over from both sources", "nats; SUM over sources; VIFB", "abf"),
        _m("CE", "Cross entropy", cross_entropy, False, "Histogram divergence between sources and fused image", "bits; average over sources; VIFB", "abf"),
        _m("PSNR", "PSNR (VIFB)", psnr, True, "Peak signal-to-noise ratio w.r.t. the sources", "dB, 255 / sqrt(VIFB RMSE); VIFB", "abf"),
        _m("RMSE", "RMSE (VIFB)", rmse, False, "Difference between sources and fused image", "L2 norm / N per source, averaged; VIFB (non-standard)", "abf"),
        _m("SSIM", "SSIM", ssim, True, "Structural similarity to both sources", "SUM over sources (max 2); 11x11 Gaussian; VIFB", "abf"),
        _m("Qabf", "Q^AB/F", q_abf, True, "Edge information transferred from the sources", "0..1; x255 scaling quirk; VIFB", "abf"),
        _m("Qcb", "Qcb (Chen-Blum)", q_cb, True, "Perceptual contrast preservation", "0..1; MATLAB rounding; VIFB", "abf"),
        _m("Qcv", "Qcv (Chen-Varshney)", q_cv, False, "Perceptual difference to the sources", "real part; VIFB", "abf"),
        _m("NMI", "Normalised MI", nmi, True, "Mutual information normalised by entropies", "0..2; 2 x sum of per-source terms; MEFB", "abf"),
        _m("VIF", "VIF (fusion)", vif, True, "Visual information fidelity of the fused image", "per-pixel source selection, weighted scales; MEFB", "abf"),
        _m("FMI_pixel", "FMI (pixel)", fmi_pixel, True, "Feature mutual information of 3x3 pixel windows", "raw-pixel features, w=3, average over sources; MEFB", "abf"),
        _m("EN_cddfuse", "Entropy (CDDFuse)", entropy_cddfuse, True, "Information content of the fused image", "bits; CDDFuse", "f"),
        _m("SD_cddfuse", "Standard deviation (CDDFuse)", standard_deviation_cddfuse, True, "Contrast of the fused image", "float32 population std; CDDFuse", "f"),
        _m("SF_cddfuse", "Spatial frequency (CDDFuse)", spatial_frequency_cddfuse, True, "Overall activity of neighbour differences", "means over differences; float32; CDDFuse", "f"),
        _m("AG_cddfuse", "Average gradient (CDDFuse)", average_gradient_cddfuse, True, "Sharpness: mean local gradient", "mean over H*W; float32; CDDFuse", "f"),
        _m("MI_cddfuse", "Mutual information (CDDFuse)", mutual_information_cddfuse, True, "Information carried over from both sources", "nats; SUM; exact-value labels; CDDFuse", "abf"),
        _m("MSE_cddfuse", "MSE (CDDFuse)", mse_cddfuse, False, "Mean squared difference to the sources", "average over sources; float32; CDDFuse", "abf"),
        _m("PSNR_cddfuse", "PSNR (CDDFuse)", psnr_cddfuse, True, "Peak signal-to-noise ratio w.r.t. the sources", "dB, peak = max(F); float32; CDDFuse", "abf"),
        _m("CC", "Correlation coefficient", correlation_coefficient, True, "Linear correlation with the sources", "average over sources; float32; CDDFuse", "abf"),
        _m("SCD", "Sum of correlations of differences", scd, True, "Complementary information taken from each source", "sum of two correlations; float32; CDDFuse", "abf"),
        _m("VIF_cddfuse", "VIF (CDDFuse)", vif_cddfuse, True, "Visual information fidelity w.r.t. each source", "Sheikh-Bovik, sigma_n^2 = 2; SUM; CDDFuse", "abf"),
        _m("Qabf_cddfuse", "Q^AB/F (CDDFuse)", q_abf_cddfuse, True, "Edge information transferred from the sources", "no x255; float32; CDDFuse", "abf"),
        _m("SSIM_cddfuse", "SSIM (CDDFuse)", ssim_cddfuse, True, "Structural similarity to both sources", "SUM; 7x7 box; data_range=2; float32; CDDFuse", "abf"),
        _m("QNR", "QNR", _pan.qnr, True, "Quality with no reference (spectral and spatial)", "(1-D_lambda)(1-D_s), p=q=1; Alparone 2008", "ms_pan_fused"),
        _m("D_lambda", "D_lambda", _d_lambda, False, "Spectral distortion (inter-band UIQI change)", "p=1, UIQI window 32; Alparone 2008", "ms_pan_fused"),
        _m("D_s", "D_s", _pan.d_s, False, "Spatial distortion (band-PAN UIQI change)", "q=1, PAN degraded to MS scale; Alparone 2008", "ms_pan_fused"),
        _m("SAM", "SAM", _pan.sam, False, "Spectral angle to the reference", "degrees, mean over pixels", "reference_fused"),
        _m("ERGAS", "ERGAS", _pan.ergas, False, "Relative global band error w.r.t. the reference", "ratio 4", "reference_fused"),
        _m("Q2n", "Q2n (Q4)", _pan.q2n, True, "Hypercomplex quality index w.r.t. the reference", "32x32 blocks; zero bands up to 2^n", "reference_fused"),
        _m("Q_avg", "UIQI (band average)", _pan.q_avg, True, "Universal image quality index averaged over bands", "32x32 sliding window", "reference_fused"),
    )
}


TASK_METRICS: dict[str, tuple[str, ...]] = {
    # the paper's tables, in the paper's order; FMI is reported as FMI_pixel and
    # MG as AG (see the module docstring)
    "ir-vis": ("EN", "SCD", "CC", "FMI_pixel", "SD", "MI"),
    "multi-exposure": ("EN", "SCD", "CC", "FMI_pixel", "SD", "MI"),
    "medical": ("EN", "FMI_pixel", "AG", "MI", "SF", "Qabf"),
    "multi-focus": ("EN", "FMI_pixel", "SCD", "CC", "SSIM", "Qabf"),
    # pan-sharpening quality: no-reference at full resolution, and with a
    # reference under the Wald protocol (see pansharpening_metrics.degrade)
    "pan-sharpening": ("QNR", "D_lambda", "D_s", "SAM", "ERGAS", "Q2n"),
}


def compute(keys: Iterable[str], a, b, f, *, reference=None) -> dict[str, float]:
    """Evaluate the metrics named by ``keys`` (keys of :data:`METRICS`).

    For the fusion metrics a, b are the sources and f the fused image (2-D). For
    the pan-sharpening ones a is the low-resolution multispectral image, b the
    PAN and f the fused image (H x W x bands); reference-based keys (SAM, ERGAS,
    Q2n, Q_avg) also need ``reference``.
    """
    out: dict[str, float] = {}
    for key in keys:
        try:
            metric = METRICS[key]
        except KeyError:
            raise ValueError(f"unknown metric {key!r}; known: {', '.join(METRICS)}") from None
        if metric.inputs == "f":
            out[key] = metric.function(f)
        elif metric.inputs == "abf":
            out[key] = metric.function(a, b, f)
        elif metric.inputs == "ms_pan_fused":
            out[key] = metric.function(a, b, f)
        else:
            if reference is None:
                raise ValueError(f"{key} needs a reference image (Wald protocol: pass reference=...)")
            out[key] = metric.function(reference, f)
    return out


def task_metrics(task: str, a, b, f, *, reference=None) -> dict[str, float]:
    """The paper's metric set for ``task`` (see :data:`TASK_METRICS`).

    For ``"pan-sharpening"`` (a = low-res MS, b = PAN, f = fused) the
    reference-based keys are included only when ``reference`` is given.
    """
    try:
        keys = TASK_METRICS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASK_METRICS)}") from None
    if reference is None:
        keys = tuple(k for k in keys if METRICS[k].inputs != "reference_fused")
    return compute(keys, a, b, f, reference=reference)
