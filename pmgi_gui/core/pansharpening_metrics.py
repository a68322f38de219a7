"""Pan-sharpening quality metrics and the Wald-protocol degradation.

Multispectral arrays are H x W x bands (a 2-D array is taken as one band), any
real dtype, any value range (no rescaling). Two ways to judge a pan-sharpened
image:

* with a reference (Wald protocol): degrade MS and PAN by the resolution ratio
  with :func:`degrade`, pan-sharpen the degraded pair, and compare the result with
  the original MS using :func:`sam`, :func:`ergas`, :func:`q2n` (Q4 for four
  bands) and :func:`q_avg`;
* without a reference, at full resolution: :func:`d_lambda`, :func:`d_s` and
  :func:`qnr` (Alparone et al. 2008).

Conventions that the literature varies on are documented where they are chosen:
the MTF-matched Gaussian of :func:`degrade`, the block handling and band padding
of :func:`q2n`, the windows of :func:`uiqi`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = [
    "mtf_sigma",
    "degrade",
    "degrade_pan",
    "sam",
    "ergas",
    "uiqi",
    "q_avg",
    "q2n",
    "d_lambda",
    "d_s",
    "qnr",
]


# --------------------------------------------------------------------------
# input checks


def _cube(x, name: str) -> np.ndarray:
    """``x`` as a float64 H x W x bands array, or ValueError."""
    arr = np.asarray(x)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected an H x W x bands array, got shape {arr.shape}")
    return real_float64(arr, name)


def real_float64(arr: np.ndarray, name: str) -> np.ndarray:
    """A non-empty, real, finite image as float64, or ValueError (shared with metrics)."""
    if arr.size == 0:
        raise ValueError(f"{name}: the image is empty")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name}: expected a real numeric image, got dtype {arr.dtype}")
    out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name}: the image contains NaN or infinite values")
    return out


def _plane(x, name: str) -> np.ndarray:
    """``x`` as a float64 2-D array (an H x W x 1 array is accepted), or ValueError."""
    arr = _cube(x, name)
    if arr.shape[2] != 1:
        raise ValueError(f"{name}: expected a single-band image, got {arr.shape[2]} bands")
    return arr[:, :, 0]


def _same_shape(reference, fused) -> tuple[np.ndarray, np.ndarray]:
    r, f = _cube(reference, "reference"), _cube(fused, "fused")
    if r.shape != f.shape:
        raise ValueError(f"shape mismatch: reference {r.shape}, fused {f.shape}")
    return r, f


def _check_ratio(ratio) -> int:
    if int(ratio) != ratio or ratio < 1:
        raise ValueError(f"ratio must be a positive integer, got {ratio!r}")
    return int(ratio)


# --------------------------------------------------------------------------
# Wald protocol


def mtf_sigma(ratio: int, gain: float) -> float:
    """Std (pixels) of the Gaussian whose response at the low-res Nyquist is ``gain``.

    A Gaussian of std s has frequency response exp(-2 pi^2 s^2 f^2); setting it to
    ``gain`` at f = 1 / (2 ratio) cycles per pixel gives
    s = ratio * sqrt(-2 ln gain) / pi.
    """
    ratio = _check_ratio(ratio)
    if not 0 < gain < 1:
        raise ValueError(f"MTF gain at Nyquist must lie in (0, 1), got {gain}")
    return ratio * math.sqrt(-2 * math.log(gain)) / math.pi


def _lowpass_decimate(x: np.ndarray, ratio: int, gains) -> np.ndarray:
    """Per-band Gaussian low-pass (mirror border) then keep every ratio-th pixel."""
    gains = np.broadcast_to(np.asarray(gains, dtype=np.float64), (x.shape[2],))
    out = np.empty_like(x)
    for k, g in enumerate(gains):
        out[:, :, k] = ndimage.gaussian_filter(x[:, :, k], mtf_sigma(ratio, float(g)), mode="reflect")
    start = ratio // 2
    return out[start::ratio, start::ratio, :]


def degrade_pan(pan, ratio: int = 4, mtf_pan: float = 0.15) -> np.ndarray:
    """The PAN low-passed and decimated by ``ratio`` (see :func:`degrade`). Returns 2-D."""
    ratio = _check_ratio(ratio)
    return _lowpass_decimate(_plane(pan, "pan")[:, :, None], ratio, mtf_pan)[:, :, 0]


def degrade(ms, pan, ratio: int = 4, mtf_ms=0.3, mtf_pan: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Wald-protocol degradation: (MS, PAN) each low-passed and decimated by ``ratio``.

    Filter (a documented choice): a Gaussian matched to a typical sensor MTF, i.e.
    whose amplitude response at the Nyquist frequency of the decimated grid is
    ``mtf_ms`` for every MS band (0.3, a generic value; pass one gain per band for
    a specific sensor) and ``mtf_pan`` for the PAN (0.15); see :func:`mtf_sigma`
    (sigma = 1.98 px for ratio 4 and gain 0.3). Borders are mirrored. Decimation
    keeps pixels ratio//2, ratio//2 + ratio, ... in each direction (the pixel
    MATLAB's ``imresize(x, 1/ratio, 'nearest')`` keeps).

    ``ms`` is h x w x bands, ``pan`` is (ratio h) x (ratio w). The degraded PAN
    lies on the original MS grid and the degraded MS on a grid ratio times
    coarser; the original MS then serves as the reference.
    """
    ratio = _check_ratio(ratio)
    ms = _cube(ms, "ms")
    pan = _plane(pan, "pan")
    if pan.shape != (ms.shape[0] * ratio, ms.shape[1] * ratio):
        raise ValueError(f"pan must be {ratio} times the MS size: ms {ms.shape[:2]}, pan {pan.shape}")
    return _lowpass_decimate(ms, ratio, mtf_ms), _lowpass_decimate(pan[:, :, None], ratio, mtf_pan)[:, :, 0]


# --------------------------------------------------------------------------
# with a reference


def sam(reference, fused) -> float:
    """Spectral Angle Mapper in DEGREES, mean over pixels. Lower is better; 0 is perfect.

    Per pixel, the angle between the band vectors of reference and fused image,
    computed as 2 atan(|u - v| / |u + v|) on the unit vectors (accurate near 0,
    unlike acos). Pixels where either vector is zero are left out; 0 if none is left.
    """
    r, f = _same_shape(reference, fused)
    nr = np.linalg.norm(r, axis=2)
    nf = np.linalg.norm(f, axis=2)
    valid = (nr > 0) & (nf > 0)
    if not np.any(valid):
        return 0.0
    u = r[valid] / nr[valid][:, None]
    v = f[valid] / nf[valid][:, None]
    angle = 2 * np.arctan2(np.linalg.norm(u - v, axis=1), np.linalg.norm(u + v, axis=1))
    return float(np.degrees(np.mean(angle)))


def ergas(reference, fused, ratio: int = 4) -> float:
    """ERGAS (Wald 2000). Lower is better; 0 is perfect.

    ERGAS = 100 / ratio * sqrt(mean over bands of (RMSE_k / mean_k)^2), with
    RMSE_k the root mean square error of band k and mean_k the mean of the
    reference band; ratio = PAN resolution / MS resolution (4).
    """
    ratio = _check_ratio(ratio)
    r, f = _same_shape(reference, fused)
    means = r.mean(axis=(0, 1))
    if np.any(means == 0):
        raise ValueError("ERGAS is undefined for a reference band with zero mean")
    rmse = np.sqrt(np.mean((r - f) ** 2, axis=(0, 1)))
    return float(100 / ratio * np.sqrt(np.mean((rmse / means) ** 2)))


def _box_sums_valid(x: np.ndarray, size: int) -> np.ndarray:
    """Sums over every size x size window lying fully inside x (direct sums, separable)."""
    rows = np.lib.stride_tricks.sliding_window_view(x, size, axis=0).sum(axis=-1)
    return np.lib.stride_tricks.sliding_window_view(rows, size, axis=1).sum(axis=-1)


def uiqi(x, y, block_size: int = 32) -> float:
    """Universal image quality index (Wang & Bovik 2002) of two 2-D images, -1..1.

    Q = 4 s_xy m_x m_y / ((s_x^2 + s_y^2)(m_x^2 + m_y^2)) on every block_size x
    block_size window lying inside the image (sliding by one pixel), averaged.
    Windows where both images are constant score 2 m_x m_y / (m_x^2 + m_y^2) (1 if
    the means are zero as well), as in Wang's reference code. Higher is better.
    """
    x, y = _plane(x, "x"), _plane(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {x.shape} vs {y.shape}")
    if block_size < 2 or min(x.shape) < block_size:
        raise ValueError(f"UIQI window {block_size} does not fit an image of shape {x.shape}")
    n = float(block_size * block_size)
    sx, sy = _box_sums_valid(x, block_size), _box_sums_valid(y, block_size)
    sxx, syy = _box_sums_valid(x * x, block_size), _box_sums_valid(y * y, block_size)
    sxy = _box_sums_valid(x * y, block_size)
    mean_term = sx * sy
    mean_sq = sx * sx + sy * sy
    cov = n * sxy - mean_term
    var_sum = n * (sxx + syy) - mean_sq
    # round-off guard: a constant window must not get a variance of noise
    tol = 1e-12 * (n * (sxx + syy) + 1e-300)
    var_sum = np.where(np.abs(var_sum) <= tol, 0.0, var_sum)
    q = np.ones_like(var_sum)
    only_means = (var_sum == 0) & (mean_sq != 0)
    q[only_means] = 2 * mean_term[only_means] / mean_sq[only_means]
    full = (var_sum != 0) & (mean_sq != 0)
    q[full] = 4 * cov[full] * mean_term[full] / (var_sum[full] * mean_sq[full])
    return float(np.mean(q))


def q_avg(reference, fused, block_size: int = 32) -> float:
    """UIQI averaged over bands (:func:`uiqi` per band, then the mean). Higher is better; 1 is perfect."""
    r, f = _same_shape(reference, fused)
    return float(np.mean([uiqi(r[:, :, k], f[:, :, k], block_size) for k in range(r.shape[2])]))


def _conj(q: np.ndarray) -> np.ndarray:
    out = -q
    out[..., 0] = q[..., 0]
    return out


def _hyper_mult(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Product of 2^n-ons stored on the last axis, with the rule of the Q2n toolbox.

    (a, b)(c, d) = (a c - conj(d) b, conj(a) conj(d) + c conj(b)) on halves,
    recursively; complex multiplication for two components, real for one. The
    modulus is multiplicative up to octonions, and z conj(z) = |z|^2.
    """
    n = p.shape[-1]
    if n == 1:
        return p * q
    h = n // 2
    a, b, c, d = p[..., :h], p[..., h:], q[..., :h], q[..., h:]
    if n == 2:
        return np.concatenate([a * c - d * b, a * d + c * b], axis=-1)
    first = _hyper_mult(a, c) - _hyper_mult(_conj(d), b)
    second = _hyper_mult(_conj(a), _conj(d)) + _hyper_mult(c, _conj(b))
    return np.concatenate([first, second], axis=-1)


def _q2n_blocks(z: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Q2n of each block: z, v are (blocks, pixels, components)."""
    m = z.shape[1]
    # standardise each block band with the reference's block mean and sample std
    mean = z.mean(axis=1, keepdims=True)
    std = z.std(axis=1, ddof=1, keepdims=True)
    std = np.where(std == 0, 1.0, std)
    z = (z - mean) / std + 1
    v = _conj((v - mean) / std + 1)
    m1, m2 = z.mean(axis=1), v.mean(axis=1)
    mod1_sq, mod2_sq = np.sum(m1 * m1, axis=1), np.sum(m2 * m2, axis=1)
    unbias = m / (m - 1)
    var_sum = unbias * (np.mean(np.sum(z * z, axis=2), axis=1) + np.mean(np.sum(v * v, axis=2), axis=1)) - unbias * (
        mod1_sq + mod2_sq
    )
    mean_bias = 2 * np.sqrt(mod1_sq) * np.sqrt(mod2_sq) / (mod1_sq + mod2_sq)
    cov = unbias * (_hyper_mult(z, v).mean(axis=1) - _hyper_mult(m1, m2))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.linalg.norm(cov, axis=1) * mean_bias * 2 / var_sum
    return np.where(var_sum == 0, mean_bias, q)


def q2n(reference, fused, block_size: int = 32, shift: int | None = None) -> float:
    """Q2n hypercomplex quality index (Garzelli & Nencini 2009); Q4 for four bands. 0..1, higher is better.

    Each pixel's band vector is a 2^n-on (hypercomplex number); per block the index
    is |cov(z, v)| / (s_z s_v) * 2 s_z s_v / (s_z^2 + s_v^2) *
    2 |E z| |E v| / (|E z|^2 + |E v|^2), and Q2n is the mean over blocks.
    Conventions of the widely used pan-sharpening toolbox (Vivone et al.):
    ``block_size`` x ``block_size`` blocks every ``shift`` pixels (default: the
    block size, i.e. tiles), the image mirrored at the bottom/right to fit whole
    blocks, each block band standardised by the reference block's mean and
    sample std (then +1) before forming 2^n-ons, the toolbox's multiplication
    rule (see ``_hyper_mult``), and a band count that is not a power of two padded
    with all-zero bands up to the next power of two (3 bands -> 4, 5..7 -> 8).
    Departures: no uint16 quantisation of the inputs (the toolbox casts to
    uint16, which breaks 0..1 data), and a block band whose reference is constant
    is shifted only (the toolbox divides by eps there).
    """
    r, f = _same_shape(reference, fused)
    shift = block_size if shift is None else shift
    if block_size < 2 or shift < 1:
        raise ValueError("block_size must be >= 2 and shift >= 1")
    h, w, bands = r.shape
    steps_y, steps_x = math.ceil(h / shift), math.ceil(w / shift)
    pad_y = (steps_y - 1) * shift + block_size - h
    pad_x = (steps_x - 1) * shift + block_size - w
    if pad_y > h or pad_x > w:
        raise ValueError(f"image {h} x {w} is too small for {block_size} x {block_size} blocks")
    n_comp = 1 << max(0, math.ceil(math.log2(bands)))

    def prepare(x):
        x = np.pad(x, ((0, max(pad_y, 0)), (0, max(pad_x, 0)), (0, 0)), mode="symmetric")
        x = np.pad(x, ((0, 0), (0, 0), (0, n_comp - bands)), mode="constant")
        win = np.lib.stride_tricks.sliding_window_view(x, (block_size, block_size), axis=(0, 1))
        win = win[::shift, ::shift][:steps_y, :steps_x]  # (by, bx, comp, bs, bs)
        return win.reshape(steps_y * steps_x, n_comp, block_size * block_size).transpose(0, 2, 1)

    return float(np.mean(_q2n_blocks(prepare(r), prepare(f))))


# --------------------------------------------------------------------------
# without a reference (QNR family)


def _full_and_low(ms, fused) -> tuple[np.ndarray, np.ndarray, int]:
    ms, fused = _cube(ms, "ms"), _cube(fused, "fused")
    if ms.shape[2] != fused.shape[2]:
        raise ValueError(f"band count differs: ms {ms.shape[2]}, fused {fused.shape[2]}")
    if fused.shape[0] % ms.shape[0] or fused.shape[1] % ms.shape[1]:
        raise ValueError(f"fused size {fused.shape[:2]} is not a multiple of the MS size {ms.shape[:2]}")
    ratio = fused.shape[0] // ms.shape[0]
    if fused.shape[1] // ms.shape[1] != ratio:
        raise ValueError(f"fused {fused.shape[:2]} and MS {ms.shape[:2]} differ by different factors")
    return ms, fused, ratio


def d_lambda(ms, fused, p: float = 1, block_size: int = 32) -> float:
    """Spectral distortion D_lambda of QNR (Alparone et al. 2008), 0..1. Lower is better.

    D_lambda = (mean over band pairs l != r of |Q(F_l, F_r) - Q(M_l, M_r)|^p)^(1/p),
    Q = :func:`uiqi` with a ``block_size`` window, F the fused image at full
    resolution, M the original MS at its own resolution.
    """
    ms, fused, _ = _full_and_low(ms, fused)
    bands = ms.shape[2]
    if bands < 2:
        raise ValueError("D_lambda needs at least two bands")
    diffs = [
        abs(uiqi(fused[:, :, i], fused[:, :, j], block_size) - uiqi(ms[:, :, i], ms[:, :, j], block_size)) ** p
        for i in range(bands)
        for j in range(i + 1, bands)
    ]
    return float(np.mean(diffs) ** (1 / p))


def d_s(ms, pan, fused, q: float = 1, block_size: int = 32, mtf_pan: float = 0.15) -> float:
    """Spatial distortion D_s of QNR (Alparone et al. 2008), 0..1. Lower is better.

    D_s = (mean over bands l of |Q(F_l, P) - Q(M_l, P_low)|^q)^(1/q), with P the
    PAN and P_low the PAN degraded to the MS resolution by :func:`degrade_pan`
    (MTF-matched Gaussian, gain ``mtf_pan``), Q = :func:`uiqi`.
    """
    ms, fused, ratio = _full_and_low(ms, fused)
    pan = _plane(pan, "pan")
    if pan.shape != fused.shape[:2]:
        raise ValueError(f"pan {pan.shape} and fused {fused.shape[:2]} differ in size")
    pan_low = degrade_pan(pan, ratio, mtf_pan)
    diffs = [
        abs(uiqi(fused[:, :, k], pan, block_size) - uiqi(ms[:, :, k], pan_low, block_size)) ** q
        for k in range(ms.shape[2])
    ]
    return float(np.mean(diffs) ** (1 / q))


def qnr(
    ms,
    pan,
    fused,
    alpha: float = 1,
    beta: float = 1,
    p: float = 1,
    q: float = 1,
    block_size: int = 32,
    mtf_pan: float = 0.15,
) -> float:
    """Quality with No Reference (Alparone et al. 2008), 0..1. Higher is better.

    QNR = (1 - D_lambda)^alpha (1 - D_s)^beta at full resolution, defaults
    alpha = beta = 1 and p = q = 1; see :func:`d_lambda`, :func:`d_s`.
    """
    dl = d_lambda(ms, fused, p, block_size)
    ds = d_s(ms, pan, fused, q, block_size, mtf_pan)
    return float((1 - dl) ** alpha * (1 - ds) ** beta)
