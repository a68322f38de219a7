"""Classical baselines: properties every method must have, on synthetic and real pairs.

No expected numbers come from our own runs: each check is a property that follows from
the method's definition (identity on a repeated source, constants kept, the sharp half
of a multi-focus pair kept, band ratios kept by Brovey, ...).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import pytest

from pmgi_gui.core import baselines as bl
from pmgi_gui.core.errors import PmgiError
from pmgi_gui.core.imageio import read_image, to_gray
from pmgi_gui.core.tasks import TASK_NAMES, get_task
from tests.conftest import shared_path

GRAY = [k for k, m in bl.BASELINES.items() if m.kind == "gray"]
PAN = [k for k, m in bl.BASELINES.items() if m.kind == "pan"]

# Largest |fused - a| allowed when a is fused with itself, in grey levels (0..255).
# 0: the method only selects or convexly mixes pixels (weights summing to 1, float64).
# 1e-4: float32 rounding of an exactly invertible transform (Laplacian pyramid, DWT,
#    guided-filter weights). 1e-3: products of pyramid ratios (RoLP) and OpenCV's float32
#    Mertens pipeline with its 1/255 scaling (about 1e-4 of 255 in float32).
SELF_TOLERANCE = {
    "average": 0.0,
    "pca": 0.0,
    "dct-var": 0.0,
    "laplacian": 1e-4,
    "dwt": 1e-4,
    "gff": 1e-4,
    "rolp": 1e-3,
    "mertens": 1e-3,
}


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A gray test image with fine texture, a smooth pattern, a black and a white patch."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.normal(0, 1, (h, w)), (0, 0), 1.2)
    t = (t - t.mean()) / t.std()
    y, x = np.mgrid[0:h, 0:w]
    img = 128 + 35 * t + 30 * np.sin(x / 9.0) * np.cos(y / 13.0)
    img[: h // 8, : w // 8] = 0
    img[-h // 8:, -w // 8:] = 255
    return np.clip(img, 0, 255).astype(np.float32)


def gradient_energy(x: np.ndarray) -> float:
    gy, gx = np.gradient(x.astype(np.float64))
    return float((gx**2 + gy**2).mean())


# ------------------------------------------------------------------------- registry

def test_registry_lists_the_methods_of_each_task():
    expected = {
        "ir-vis": ["average", "rolp", "laplacian"],
        "multi-exposure": ["average", "mertens"],
        "medical": ["average", "pca", "dwt"],
        "multi-focus": ["average", "dct-var", "gff"],
        "pan-sharpening": ["average", "pca-cs", "fihs", "brovey"],
    }
    assert set(expected) == set(TASK_NAMES)
    for task, keys in expected.items():
        assert [m.key for m in bl.baselines_for(task)] == keys


def test_registry_entries_are_complete_and_frozen():
    for key, m in bl.BASELINES.items():
        assert m.key == key and m.name and m.citation
        assert m.kind in ("gray", "pan")
        assert m.tasks and set(m.tasks) <= set(TASK_NAMES)
        assert m.fn.__doc__ and len(m.fn.__doc__) > 80, f"{key} needs a docstring with its paper"
        if m.kind == "pan":
            assert m.tasks == ("pan-sharpening",)
    with pytest.raises(Exception):
        bl.BASELINES["average"].key = "other"  # frozen dataclass
    with pytest.raises(PmgiError):
        bl.baselines_for("no-such-task")
    with pytest.raises(PmgiError):
        bl.get_baseline("no-such-method")


# ------------------------------------------------------------------ real shared pairs

@lru_cache(maxsize=None)
def real_pairs(task: str) -> tuple:
    """(name, a, b) for every pair of the task: gray via to_gray, or MS bicubic x4 + PAN."""
    t = get_task(task)
    pairs = []
    for folder in sorted(p for p in shared_path("data", task).iterdir() if p.is_dir()):
        a = read_image(next(folder.glob(t.stem_a + ".*")))
        b = read_image(next(folder.glob(t.stem_b + ".*")))
        if task == "pan-sharpening":
            pan = b.astype(np.float32)
            ms_up = cv2.resize(a.astype(np.float32), (pan.shape[1], pan.shape[0]),
                               interpolation=cv2.INTER_CUBIC)
            pairs.append((folder.name, ms_up, pan))
        else:
            pairs.append((folder.name, to_gray(a), to_gray(b)))
    assert pairs, f"no pairs under the shared data for {task}"
    return tuple(pairs)


@pytest.mark.parametrize("task,key", [(t, m.key) for t in TASK_NAMES for m in bl.baselines_for(t)])
def test_every_baseline_runs_on_every_real_pair_of_its_task(task, key):
    m = bl.BASELINES[key]
    for name, a, b in real_pairs(task):
        if m.kind == "gray" and a.ndim == 3:  # gray methods on pan data: band by band
            fused = np.stack([m.fn(band * (255.0 / a.max()), b * (255.0 / b.max()))
                              for band in np.moveaxis(a, 2, 0)], axis=2)
        else:
            fused = m.fn(a, b)
        assert fused.shape == a.shape, name
        assert fused.dtype == np.float32, name
        assert np.isfinite(fused).all(), name
        if m.kind == "gray":
            assert fused.min() >= 0 and fused.max() <= 255, name
            assert fused.std() > 0, name
        else:
            # Not clipped to 0..255: the IKONOS tiles are 11-bit, and the result stays
            # within the data's scale (no blow-up from the divisions).
            lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
            assert fused.min() > lo - (hi - lo) and fused.max() < hi + (hi - lo), name
            if a.max() > 255:
                assert fused.max() > 255, name


# ----------------------------------------------------------------- gray properties

@pytest.mark.parametrize("key", GRAY)
def test_fusing_an_image_with_itself_returns_it(key):
    assert set(SELF_TOLERANCE) == set(GRAY), "state a self-fusion tolerance for each method"
    a = texture(93, 130)
    fused = bl.BASELINES[key].fn(a, a.copy())
    assert fused.shape == a.shape and fused.dtype == np.float32
    assert np.abs(fused - a).max() <= SELF_TOLERANCE[key]


@pytest.mark.parametrize("key", GRAY)
@pytest.mark.parametrize("value", [0.0, 77.5, 255.0])
def test_constant_inputs_give_that_constant(key, value):
    c = np.full((40, 52), value, np.float32)
    fused = bl.BASELINES[key].fn(c, c.copy())
    assert np.abs(fused - value).max() <= SELF_TOLERANCE[key]


@pytest.mark.parametrize("key", GRAY)
def test_gray_methods_refuse_mismatched_sources(key):
    with pytest.raises(PmgiError):
        bl.BASELINES[key].fn(np.zeros((10, 12), np.float32), np.zeros((12, 10), np.float32))


def _focus_pair(h=128, w=160, sigma=2.5):
    sharp = texture(h, w, seed=3)
    blurred = cv2.GaussianBlur(sharp, (0, 0), sigma)
    left = np.zeros((h, w), bool)
    left[:, : w // 2] = True
    near = np.where(left, sharp, blurred)  # left half in focus
    far = np.where(left, blurred, sharp)   # right half in focus
    m = 16  # stay clear of the seam and of the image border
    halves = (np.s_[m:-m, m: w // 2 - m], np.s_[m:-m, w // 2 + m: -m])
    return sharp, blurred, near, far, halves


# Multi-focus methods, plus the other methods whose rule keeps the larger detail
# coefficient (pyramids, DWT). Mertens is left out: its contrast weight is shared with
# well-exposedness, so it favours the sharp source only partly.
DETAIL_SELECTING = ["dct-var", "gff", "laplacian", "rolp", "dwt"]


@pytest.mark.parametrize("key", DETAIL_SELECTING)
def test_a_region_in_focus_in_one_source_only_stays_sharp(key):
    sharp, blurred, near, far, halves = _focus_pair()
    fused = bl.BASELINES[key].fn(near, far)
    for region in halves:
        to_sharp = np.abs(fused - sharp)[region].mean()
        to_blurred = np.abs(fused - blurred)[region].mean()
        assert to_sharp < 0.25 * to_blurred
        # The blurred copy keeps about 5% of the gradient energy, an average about 30%.
        assert gradient_energy(fused[region]) > 0.7 * gradient_energy(sharp[region])


def test_the_focus_criterion_rejects_a_plain_average():
    sharp, _, near, far, halves = _focus_pair()
    fused = bl.average(near, far)
    assert all(gradient_energy(fused[r]) < 0.7 * gradient_energy(sharp[r]) for r in halves)


@pytest.mark.parametrize("key", ["average", "pca"])
def test_weighted_averages_stay_between_the_sources(key):
    a, b = texture(60, 70, seed=1), texture(60, 70, seed=2)
    fused = bl.BASELINES[key].fn(a, b)
    assert (fused >= np.minimum(a, b) - 1e-3).all() and (fused <= np.maximum(a, b) + 1e-3).all()
    assert np.allclose(fused, bl.BASELINES[key].fn(b, a), atol=1e-3)  # symmetric


def test_pca_gives_no_weight_to_a_source_without_variance():
    a = texture(60, 70, seed=1)
    flat = np.full_like(a, 200.0)
    assert np.abs(bl.pca_fusion(a, flat) - a).max() <= 1e-3
    assert np.abs(bl.pca_fusion(flat, a) - a).max() <= 1e-3


def test_pca_weights_the_source_of_larger_variance_more():
    a = texture(60, 70, seed=1)
    low = 128 + 0.2 * (texture(60, 70, seed=2) - 128)
    fused = bl.pca_fusion(a, low)
    assert np.abs(fused - a).mean() < np.abs(fused - low).mean()


def test_exposure_fusion_prefers_the_well_exposed_source():
    scene = 60 + 0.5 * texture(80, 96, seed=4)     # mid-tones, 60..188
    overexposed = np.clip(scene + 150, 0, 255)     # mostly saturated
    fused = bl.exposure_fusion(scene, overexposed)
    assert np.abs(fused - scene).mean() < np.abs(fused - overexposed).mean()
    fused = bl.exposure_fusion(overexposed, scene)  # order of the sources does not matter
    assert np.abs(fused - scene).mean() < np.abs(fused - overexposed).mean()


@pytest.mark.parametrize("key", ["laplacian", "rolp", "dwt"])
def test_pyramid_methods_keep_the_details_of_both_sources(key):
    # Texture on the left in a, on the right in b, flat grey elsewhere (ir-vis-like
    # complementary content): the max-abs rule keeps both; an average halves them.
    t = texture(96, 128, seed=5)
    flat = np.full_like(t, float(t.mean()))
    left = np.zeros(t.shape, bool)
    left[:, :64] = True
    a, b = np.where(left, t, flat), np.where(left, flat, t)
    fused = bl.BASELINES[key].fn(a, b)
    for region in (np.s_[16:-16, 16:48], np.s_[16:-16, 80:-16]):
        assert gradient_energy(fused[region]) > 0.7 * gradient_energy(t[region])


# ------------------------------------------------------------------ pan properties

def multiband(h: int, w: int, n: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """Positive, correlated but not rank-1 bands, like an upsampled MS image."""
    rng = np.random.default_rng(seed)
    base = texture(h, w, seed)
    bands = [base * rng.uniform(0.5, 1.5) + 20 + 10 * cv2.GaussianBlur(
        rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 3) * rng.uniform(0.5, 2)
        for _ in range(n)]
    return (np.stack(bands, axis=2) * scale + 5).astype(np.float32)


@pytest.mark.parametrize("n", [3, 4, 8])
def test_a_pan_equal_to_the_intensity_returns_the_ms_bands(n):
    ms = multiband(48, 56, n, seed=n)
    intensity = ms.mean(axis=2)
    for fn in (bl.fast_ihs, bl.brovey):
        assert np.allclose(fn(ms, intensity), ms, rtol=1e-5, atol=1e-3)
    # PCA substitutes the first principal component: a PAN equal to it (up to an
    # increasing affine map, which the mean/std matching removes) changes nothing.
    x = ms.reshape(-1, n).astype(np.float64)
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    v1 = vt[0] if vt[0].sum() > 0 else -vt[0]
    pc1 = (centred @ v1).reshape(ms.shape[:2])
    pan = (3.0 * pc1 + 500.0).astype(np.float32)
    assert np.allclose(bl.pca_pansharpen(ms, pan), ms, rtol=1e-5, atol=1e-2)


@pytest.mark.parametrize("key", PAN)
def test_constant_bands_and_pan_give_the_bands_back(key):
    ms = np.ones((20, 24, 4), np.float32) * np.array([100, 250, 400, 1800], np.float32)
    pan = np.full((20, 24), 900.0, np.float32)
    assert np.allclose(bl.BASELINES[key].fn(ms, pan), ms, rtol=1e-6)


@pytest.mark.parametrize("key", PAN)
def test_pan_methods_are_scale_equivariant_and_not_clipped(key):
    # 16-bit data: multiplying MS and PAN by 40 multiplies the result by 40.
    ms = multiband(40, 44, 4, seed=7)
    pan = texture(40, 44, seed=8) + 10
    small = bl.BASELINES[key].fn(ms, pan)
    large = bl.BASELINES[key].fn(ms * 40, pan * 40)
    assert large.max() > 255 * 10
    assert np.allclose(large, 40 * small, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("key", PAN)
def test_pan_details_reach_the_fused_bands(key):
    ms = cv2.GaussianBlur(multiband(64, 64, 4, seed=9), (0, 0), 3)  # like an upsampled MS
    pan = texture(64, 64, seed=10)
    fused = bl.BASELINES[key].fn(ms, pan)
    for k in range(4):
        hp_f = fused[:, :, k] - cv2.GaussianBlur(fused[:, :, k], (0, 0), 2)
        hp_p = pan - cv2.GaussianBlur(pan, (0, 0), 2)
        assert np.corrcoef(hp_f.ravel(), hp_p.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("key", PAN)
def test_pan_methods_refuse_mismatched_grids(key):
    with pytest.raises(PmgiError):
        bl.BASELINES[key].fn(np.ones((10, 12, 4), np.float32), np.ones((40, 48), np.float32))


def test_brovey_keeps_the_band_ratios():
    ms = multiband(48, 56, 4, seed=11)
    fused = bl.brovey(ms, texture(48, 56, seed=12) + 30)
    ok = fused[:, :, 0] > 1e-3
    for k in range(1, 4):
        assert np.allclose((fused[:, :, k] / fused[:, :, 0])[ok], (ms[:, :, k] / ms[:, :, 0])[ok],
                           rtol=1e-4)


def test_brovey_survives_zero_intensity():
    ms = multiband(32, 32, 4, seed=13)
    ms[:8, :8] = 0
    fused = bl.brovey(ms, texture(32, 32, seed=14))
    assert np.isfinite(fused).all() and (fused[:8, :8] == 0).all()


def test_fast_ihs_adds_the_same_detail_to_every_band():
    ms = multiband(48, 56, 5, seed=15)
    pan = texture(48, 56, seed=16)
    detail = bl.fast_ihs(ms, pan).astype(np.float64) - ms
    assert np.abs(detail - detail[:, :, :1]).max() < 1e-3
    # ... and the fused intensity is the PAN matched to the MS intensity.
    intensity = bl.fast_ihs(ms, pan).mean(axis=2)
    assert np.corrcoef(intensity.ravel(), pan.ravel())[0, 1] > 0.9999
    assert abs(intensity.mean() - ms.mean()) < 1e-2


def test_pca_injects_detail_along_one_spectral_direction():
    ms = multiband(48, 56, 4, seed=17)
    detail = (bl.pca_pansharpen(ms, texture(48, 56, seed=18)).astype(np.float64) - ms).reshape(-1, 4)
    s = np.linalg.svd(detail, compute_uv=False)
    assert s[1] < 1e-4 * s[0]  # rank one: F - MS = (PAN' - PC1) v1
