"""Pan-sharpening quality metrics on constructed cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from pmgi_gui.core import pansharpening_metrics as ps


@pytest.fixture
def reference():
    rng = np.random.default_rng(7)
    return rng.uniform(10, 250, (64, 64, 4))


def _unbias_block_stats(x, block):
    """Per block and band: mean and sample std (ddof 1)."""
    h, w, n = x.shape
    t = x.reshape(h // block, block, w // block, block, n).transpose(0, 2, 4, 1, 3).reshape(-1, n, block * block)
    return t.mean(axis=2), t.std(axis=2, ddof=1)


# --------------------------------------------------------------------------
# identical images


def test_identical_images_are_perfect(reference):
    assert ps.sam(reference, reference) == 0
    assert ps.ergas(reference, reference) == 0
    assert ps.q2n(reference, reference) == pytest.approx(1, abs=1e-12)
    assert ps.q_avg(reference, reference) == pytest.approx(1, abs=1e-12)
    ms = reference[:32, :32]
    assert ps.d_lambda(ms, ms) == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("bands", [1, 2, 3, 5, 8])
def test_identical_images_any_band_count(bands):
    x = np.random.default_rng(bands).uniform(0, 1, (40, 50, bands))  # not a multiple of 32
    assert ps.q2n(x, x) == pytest.approx(1, abs=1e-12)


# --------------------------------------------------------------------------
# SAM


@pytest.mark.parametrize("degrees", [0.5, 7.0, 30.0, 90.0, 135.0])
def test_sam_of_a_pure_spectral_rotation(reference, degrees):
    # an isoclinic rotation (same angle in planes (0,1) and (2,3)) turns every
    # 4-vector by exactly that angle
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    rot = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, c, -s], [0, 0, s, c]])
    rotated = reference @ rot.T
    assert ps.sam(reference, rotated) == pytest.approx(degrees, abs=1e-9)


def test_sam_of_a_two_band_rotation():
    rng = np.random.default_rng(3)
    angle = rng.uniform(0, math.pi / 2, (20, 30))
    ref = np.stack([np.cos(angle), np.sin(angle)], axis=-1) * 5
    fused = np.stack([np.cos(angle + 0.25), np.sin(angle + 0.25)], axis=-1) * 2
    assert ps.sam(ref, fused) == pytest.approx(math.degrees(0.25), abs=1e-9)


def test_sam_ignores_zero_vectors(reference):
    ref = reference.copy()
    fused = reference * 3.0
    ref[:5] = 0
    fused[5:8] = 0
    assert ps.sam(ref, fused) == pytest.approx(0, abs=1e-9)
    assert ps.sam(np.zeros((4, 4, 3)), np.ones((4, 4, 3))) == 0


# --------------------------------------------------------------------------
# scaling, offsets: ERGAS, SAM, UIQI, Q2n closed forms


@pytest.mark.parametrize("k", [0.5, 1.1, 3.0])
def test_scaling_every_band(reference, k):
    fused = reference * k
    assert ps.sam(reference, fused) == pytest.approx(0, abs=1e-9)
    # RMSE_b = |k - 1| sqrt(E[r_b^2]), so ERGAS = 100/4 |k-1| sqrt(mean_b E[r_b^2] / E[r_b]^2)
    ratio_b = np.mean(reference**2, axis=(0, 1)) / np.mean(reference, axis=(0, 1)) ** 2
    assert ps.ergas(reference, fused, ratio=4) == pytest.approx(100 / 4 * abs(k - 1) * math.sqrt(ratio_b.mean()), rel=1e-12)
    # UIQI(x, kx) = 4 k^2 / (1 + k^2)^2 in every window
    assert ps.q_avg(reference, fused) == pytest.approx(4 * k * k / (1 + k * k) ** 2, rel=1e-9)
    # Q2n: the standardised fused block is v = k z + c, so |cov| / variances give
    # 2k / (1 + k^2) and the mean term uses E z = 1 and E v_b = 1 + (k - 1) m_b / s_b
    mean, std = _unbias_block_stats(reference, 32)
    ev = 1 + (k - 1) * mean / std
    ez_sq, ev_sq = 4.0, np.sum(ev * ev, axis=1)
    expected = np.mean(2 * k / (1 + k * k) * 2 * np.sqrt(ez_sq * ev_sq) / (ez_sq + ev_sq))
    assert ps.q2n(reference, fused) == pytest.approx(expected, rel=1e-9)


def test_ergas_of_a_constant_offset(reference):
    d = 6.0
    mu = reference.mean(axis=(0, 1))
    expected = 100 / 4 * math.sqrt(np.mean((d / mu) ** 2))
    assert ps.ergas(reference, reference + d) == pytest.approx(expected, rel=1e-12)
    assert ps.ergas(reference, reference + d, ratio=2) == pytest.approx(2 * expected, rel=1e-12)


def test_uiqi_of_constant_windows():
    x = np.full((40, 40), 10.0)
    assert ps.uiqi(x, x, 8) == 1.0
    assert ps.uiqi(x, 3 * x, 8) == pytest.approx(2 * 10 * 30 / (100 + 900))


# --------------------------------------------------------------------------
# Q2n machinery


def test_q2n_two_bands_matches_complex_arithmetic():
    rng = np.random.default_rng(11)
    ref = rng.uniform(0, 1, (64, 64, 2))
    fused = ref + rng.normal(0, 0.2, ref.shape)
    values = []
    for by in range(2):
        for bx in range(2):
            r = ref[32 * by : 32 * by + 32, 32 * bx : 32 * bx + 32].reshape(-1, 2)
            f = fused[32 * by : 32 * by + 32, 32 * bx : 32 * bx + 32].reshape(-1, 2)
            m, s = r.mean(axis=0), r.std(axis=0, ddof=1)
            z = (r - m) / s + 1
            v = (f - m) / s + 1
            z = z[:, 0] + 1j * z[:, 1]
            v = v[:, 0] + 1j * v[:, 1]
            cov = np.cov(z, v)[0, 1]  # E[(z - Ez) conj(v - Ev)] with n - 1
            var_z, var_v = np.var(z, ddof=1), np.var(v, ddof=1)
            mz, mv = abs(z.mean()), abs(v.mean())
            values.append(abs(cov) * 2 / (var_z + var_v) * 2 * mz * mv / (mz**2 + mv**2))
    assert ps.q2n(ref, fused) == pytest.approx(np.mean(values), rel=1e-9)


def test_hypercomplex_product_rule():
    rng = np.random.default_rng(5)
    p, q = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    got = ps._hyper_mult(p, q)
    # (a, b)(c, d) = (a c - conj(d) b, conj(a) conj(d) + c conj(b)) on complex halves
    a, b = p[:, 0] + 1j * p[:, 1], p[:, 2] + 1j * p[:, 3]
    c, d = q[:, 0] + 1j * q[:, 1], q[:, 2] + 1j * q[:, 3]
    first = a * c - np.conj(d) * b
    second = np.conj(a) * np.conj(d) + c * np.conj(b)
    np.testing.assert_allclose(got, np.stack([first.real, first.imag, second.real, second.imag], axis=1), atol=1e-12)
    for n in (2, 4, 8):
        p, q = rng.normal(size=(6, n)), rng.normal(size=(6, n))
        np.testing.assert_allclose(
            np.linalg.norm(ps._hyper_mult(p, q), axis=1), np.linalg.norm(p, axis=1) * np.linalg.norm(q, axis=1)
        )
        zz = ps._hyper_mult(p, ps._conj(p))
        np.testing.assert_allclose(zz[:, 0], np.sum(p * p, axis=1))
        np.testing.assert_allclose(zz[:, 1:], 0, atol=1e-12)


def test_q2n_pads_missing_bands_with_zeros(reference):
    fused = reference + np.random.default_rng(2).normal(0, 10, reference.shape)
    r3, f3 = reference[..., :3], fused[..., :3]
    zero = np.zeros(reference.shape[:2] + (1,))
    assert ps.q2n(r3, f3) == ps.q2n(np.concatenate([r3, zero], -1), np.concatenate([f3, zero], -1))
    assert 0 < ps.q2n(reference, fused) < 1


def test_q2n_local_damage_lowers_only_its_block(reference):
    damaged = reference.copy()
    damaged[:32, :32] = damaged[:32, :32][::-1]  # scramble one block of four
    value = ps.q2n(reference, damaged)
    assert value < 1
    assert value > 0.75 - 1e-12  # three blocks still score 1


# --------------------------------------------------------------------------
# QNR family


def _alpha_case(alphas_ms, alphas_fused, size=128, ratio=4):
    rng = np.random.default_rng(9)
    pan = ndimage.gaussian_filter(rng.uniform(0, 255, (size, size)), 1.0) + 20
    pan_low = ps.degrade_pan(pan, ratio)
    ms = np.stack([a * pan_low for a in alphas_ms], axis=-1)
    fused = np.stack([a * pan for a in alphas_fused], axis=-1)
    return ms, pan, fused


def test_qnr_is_one_when_bands_are_scaled_pan():
    # Q(a_l P, a_r P) and Q(a_l P, P) do not depend on the window, so both
    # resolutions agree and both distortions vanish
    ms, pan, fused = _alpha_case([1.0, 1.5, 0.7, 2.0], [1.0, 1.5, 0.7, 2.0])
    assert ps.d_lambda(ms, fused) == pytest.approx(0, abs=1e-9)
    assert ps.d_s(ms, pan, fused) == pytest.approx(0, abs=1e-9)
    assert ps.qnr(ms, pan, fused) == pytest.approx(1, abs=1e-9)


def test_qnr_closed_form():
    # fused bands all equal to P: Q(F_1, F_2) = 1; MS bands P_low and 2 P_low:
    # Q = 4*4/25 = 0.64, so D_lambda = 0.36; D_s = mean(|1 - 1|, |1 - 0.64|) = 0.18
    ms, pan, fused = _alpha_case([1.0, 2.0], [1.0, 1.0])
    assert ps.d_lambda(ms, fused) == pytest.approx(0.36, abs=1e-9)
    assert ps.d_s(ms, pan, fused) == pytest.approx(0.18, abs=1e-9)
    assert ps.qnr(ms, pan, fused) == pytest.approx(0.64 * 0.82, abs=1e-9)
    # exponents: p = 2 over one pair is the same number; beta = 2 squares (1 - D_s)
    assert ps.qnr(ms, pan, fused, beta=2) == pytest.approx(0.64 * 0.82**2, abs=1e-9)


# --------------------------------------------------------------------------
# Wald protocol


@pytest.mark.parametrize("gain", [0.15, 0.3])
def test_mtf_gaussian_has_the_requested_gain_at_nyquist(gain):
    ratio = 4
    impulse = np.zeros((256, 256))
    impulse[0, 0] = 1
    response = np.abs(np.fft.fft2(ndimage.gaussian_filter(impulse, ps.mtf_sigma(ratio, gain), mode="wrap")))
    nyquist = 256 // (2 * ratio)  # 1 / (2 ratio) cycles per pixel
    assert response[0, nyquist] == pytest.approx(gain, rel=1e-3)
    assert response[0, 0] == pytest.approx(1)


def test_degrade_shapes_and_constants():
    ms = np.full((32, 48, 4), 7.0)
    pan = np.full((128, 192), 3.0)
    ms_low, pan_low = ps.degrade(ms, pan)
    assert ms_low.shape == (8, 12, 4) and pan_low.shape == (32, 48)
    np.testing.assert_allclose(ms_low, 7.0)
    np.testing.assert_allclose(pan_low, 3.0)
    with pytest.raises(ValueError, match="4 times"):
        ps.degrade(ms, pan[:-1])


def test_degrade_keeps_the_centre_phase():
    # a horizontal ramp survives the symmetric low-pass away from the borders, so
    # the decimated value tells which pixel was kept: column 4 j + ratio // 2
    ms = np.zeros((16, 16, 1))
    pan = np.tile(np.arange(64.0), (64, 1))
    _, pan_low = ps.degrade(ms, pan)
    assert pan_low[8, 6] == pytest.approx(4 * 6 + 2, abs=1e-9)


# --------------------------------------------------------------------------
# invalid input


def test_invalid_input_raises(reference):
    with pytest.raises(ValueError, match="shape mismatch"):
        ps.sam(reference, reference[:-1])
    bad = reference.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ps.ergas(reference, bad)
    with pytest.raises(ValueError, match="bands"):
        ps.q2n(np.zeros((4, 4, 2, 2)), np.zeros((4, 4, 2, 2)))
    with pytest.raises(ValueError, match="zero mean"):
        ps.ergas(np.zeros((4, 4, 2)), np.ones((4, 4, 2)))
    with pytest.raises(ValueError, match="multiple"):
        ps.d_lambda(reference[:30, :30], reference)
    with pytest.raises(ValueError, match="ratio"):
        ps.ergas(reference, reference, ratio=0)
