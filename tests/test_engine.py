"""Tiled inference: exact for conv stacks, whole-image moments for reference models."""

import numpy as np
import pytest
import torch

from pmgi_gui.core.engine import Workspace, choose_device, fuse_gray, tiles
from pmgi_gui.core.errors import Cancelled, PmgiError
from tests.helpers import random_checkpoint, random_model, scene

H, W = 300, 410  # not multiples of the tile: border tiles are partial


@pytest.fixture(scope="module")
def pair():
    return scene(H, W, 1).astype(np.float32), scene(H, W, 2).astype(np.float32)


def test_tile_plan_covers_the_image_once():
    plan = tiles(H, W, 128)
    cover = np.zeros((H, W), int)
    for t in plan:
        cover[t.y0:t.y1, t.x0:t.x1] += 1
        assert t.hy0 == max(0, t.y0 - 5) and t.hx1 == min(W, t.x1 + 5)
    assert len(plan) == 12 and (cover == 1).all()


@pytest.mark.parametrize("normalisation", ["batch", "none"])
def test_tiled_equals_whole_image_for_conv_stacks(pair, normalisation):
    model = random_model(normalisation, seed=5)
    whole = fuse_gray(model, *pair, tile=10_000)
    tiled = fuse_gray(model, *pair, tile=64)  # 35 tiles, many straddling borders
    assert whole.std() > 0.01
    assert np.abs(whole - tiled).max() < 1e-5


def test_tiled_reference_matches_whole_image_moments(pair):
    model = random_model("reference", seed=6)
    whole = fuse_gray(model, *pair, tile=10_000)
    with torch.no_grad():  # the plain per-image forward, as the released script runs it
        from pmgi_gui.core.network import to_network
        direct = model(to_network(torch.from_numpy(pair[0]))[None, None],
                       to_network(torch.from_numpy(pair[1]))[None, None])[0, 0].numpy()
    assert np.abs(whole - direct).max() < 1e-6
    tiled = fuse_gray(model, *pair, tile=96, reference_whole_pixels=0)
    assert np.abs(whole - tiled).max() < 2e-5  # measured 3.4e-6: the summed convolutions' rounding
    assert np.array_equal(fuse_gray(model, *pair, tile=96), whole)  # small enough to run whole
    # Naive tiling with per-tile moments would be far off: the check can fail.
    naive = np.zeros_like(whole)
    for t in tiles(H, W, 96):
        naive[t.y0:t.y1, t.x0:t.x1] = fuse_gray(model, pair[0][t.y0:t.y1, t.x0:t.x1],
                                                pair[1][t.y0:t.y1, t.x0:t.x1], tile=10_000)
    assert np.abs(whole - naive).max() > 1e-2


def test_progress_reports_every_tile_and_cancel_stops(pair):
    model = random_model("batch")
    seen = []
    fuse_gray(model, *pair, tile=128, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(i, 12) for i in range(1, 13)]
    calls = []
    with pytest.raises(Cancelled):
        fuse_gray(model, *pair, tile=128, progress=lambda d, t: calls.append(d),
                  cancel=lambda: len(calls) >= 3)
    assert len(calls) == 3


def test_reference_progress_counts_the_moment_passes(pair):
    seen = []
    fuse_gray(random_model("reference"), *pair, tile=256, progress=lambda d, t: seen.append((d, t)),
              reference_whole_pixels=0)
    assert seen[-1] == (28, 28)  # 4 tiles x (6 moment levels + 1 final pass)


def test_device_choice():
    assert choose_device("cpu").type == "cpu"
    assert choose_device("auto").type in {"cuda", "mps", "cpu"}
    if not torch.cuda.is_available():
        with pytest.raises(PmgiError, match="no CUDA GPU"):
            choose_device("cuda")


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_conv_stack_layout_computes_the_network(pair, device):
    from pmgi_gui.core.engine import ConvStack
    from pmgi_gui.core.network import to_network

    model = random_model("batch", seed=8).fold().to(device)
    a = to_network(torch.from_numpy(pair[0][:70, :90]))[None, None].to(device)
    b = to_network(torch.from_numpy(pair[1][:70, :90]))[None, None].to(device)
    with torch.no_grad():
        ref = model(a, b)
        fast = ConvStack(model).to(device)(a, b)
    assert ref.std() > 0.01
    assert torch.max(torch.abs(ref - fast)).item() < 1e-5


def test_tiles_on_worker_threads_restore_the_thread_count(pair):
    # Tiles run on one worker per core with one intra-op thread each; concurrent calls
    # (the window's worker and an evaluation, say) must not leave torch at 1 thread.
    import threading

    model = random_model("batch", seed=9)
    before = torch.get_num_threads()
    serial = fuse_gray(model, *pair, tile=10_000)
    results = [None, None]

    def run(i):
        results[i] = fuse_gray(model, *pair, tile=64)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert torch.get_num_threads() == before
    for r in results:
        assert np.abs(r - serial).max() < 1e-5


def test_bf16_precision_is_close_and_cpu_only(pair):
    model = random_model("batch", seed=10)
    exact = fuse_gray(model, *pair, tile=128)
    fast = fuse_gray(model, *pair, tile=128, precision="bf16")
    assert fast.dtype == np.float32
    assert 0 < np.abs(fast - exact).max() < 0.05  # bf16 has 8 significant bits
    if torch.cuda.is_available():
        with pytest.raises(PmgiError, match="CPU"):
            fuse_gray(model, *pair, device="cuda", precision="bf16")


def test_fp16_precision_is_for_cuda_and_its_half_arithmetic_is_close(pair, monkeypatch):
    from pmgi_gui.core import engine

    model = random_model("batch", seed=12)
    with pytest.raises(PmgiError, match="CUDA"):
        fuse_gray(model, *pair, precision="fp16")
    exact = fuse_gray(model, *pair, tile=128)
    reference = random_model("reference", seed=13)
    whole = fuse_gray(reference, *pair, tile=10_000)
    # fuse_gray takes fp16 on CUDA only; here the half-precision stack runs on the CPU's
    # F.conv2d: this checks the dtype's way through the tiles, the reference passes and
    # the output, not a GPU's numbers (tests below, and the benchmark, on a GPU).
    monkeypatch.setattr(engine, "_compute_dtype", lambda precision, device: torch.float16)
    half = fuse_gray(model, *pair, tile=128)
    assert half.dtype == np.float32
    assert 0 < np.abs(half - exact).max() < 0.02  # fp16 has 11 significant bits
    tiled = fuse_gray(reference, *pair, tile=64, reference_whole_pixels=0)
    assert 0 < np.abs(tiled - whole).max() < 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("normalisation", ["batch", "reference"])
def test_fp16_on_cuda_is_close_to_fp32(pair, normalisation):
    model = random_model(normalisation, seed=14)
    exact = fuse_gray(model, *pair, device="cuda", tile=64, reference_whole_pixels=0)
    half = fuse_gray(model, *pair, device="cuda", tile=64, reference_whole_pixels=0, precision="fp16")
    assert np.abs(exact - fuse_gray(model, *pair, tile=64, reference_whole_pixels=0)).max() < 1e-3
    assert 0 < np.abs(half - exact).max() < 0.05


def test_tiled_reference_with_and_without_the_level_cache(pair):
    # The cached scheme (level sums kept per tile) and the recomputing one (7 passes)
    # both match whole-image moments; tile 64 puts many tiles on the borders.
    model = random_model("reference", seed=11)
    whole = fuse_gray(model, *pair, tile=10_000)
    cached = fuse_gray(model, *pair, tile=64, reference_whole_pixels=0)
    passes = fuse_gray(model, *pair, tile=64, reference_whole_pixels=0, reference_cache_bytes=0)
    assert np.abs(whole - cached).max() < 2e-5
    assert np.abs(whole - passes).max() < 2e-5
    fast = fuse_gray(model, *pair, tile=64, reference_whole_pixels=0, precision="bf16")
    assert np.abs(whole - fast).max() < 0.1


def test_conv_stack_of_a_reference_model_normalises_per_image(pair):
    from pmgi_gui.core.engine import ConvStack
    from pmgi_gui.core.network import to_network

    model = random_model("reference", seed=12)
    a = to_network(torch.from_numpy(pair[0][:70, :90]))[None, None]
    b = to_network(torch.from_numpy(pair[1][:70, :90]))[None, None]
    with torch.no_grad():
        ref = model(a, b)
        fast = ConvStack(model)(a, b)
    assert torch.max(torch.abs(ref - fast)).item() < 1e-5


def test_tile_memory_is_kept_where_glibc_allows():
    import platform

    from pmgi_gui.core import engine

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert engine.TILE_MEMORY_KEPT
    else:
        assert not engine.TILE_MEMORY_KEPT


def test_a_workspace_keeps_the_level_cache_between_calls(pair):
    model = random_model("reference", seed=12)
    alone = fuse_gray(model, *pair, tile=64, reference_whole_pixels=0)
    ws = Workspace()
    first = fuse_gray(model, *pair, tile=64, reference_whole_pixels=0, workspace=ws)
    held = {name: b.data_ptr() for name, b in ws._buffers.items()}
    assert sorted(held) == ["reference-A", "reference-B"] and ws.nbytes > 0
    second = fuse_gray(model, *pair, tile=64, reference_whole_pixels=0, workspace=ws)
    assert {name: b.data_ptr() for name, b in ws._buffers.items()} == held  # reused, not remade
    assert np.array_equal(first, alone) and np.array_equal(second, alone)
    # A smaller image reuses the buffers; a larger one replaces them.
    small = [p[:150, :200] for p in pair]
    assert np.array_equal(fuse_gray(model, *small, tile=64, reference_whole_pixels=0, workspace=ws),
                          fuse_gray(model, *small, tile=64, reference_whole_pixels=0))
    assert {name: b.data_ptr() for name, b in ws._buffers.items()} == held
    big = [np.pad(p, ((0, 40), (0, 0)), mode="reflect") for p in pair]
    fuse_gray(model, *big, tile=64, reference_whole_pixels=0, workspace=ws)
    assert ws.nbytes > 2 * 2 * 16 * 4 * H * W
    ws.release()
    assert ws.nbytes == 0


def test_a_workspace_in_use_is_left_alone(pair):
    model = random_model("reference", seed=12)
    alone = fuse_gray(model, *pair, tile=64, reference_whole_pixels=0)
    ws = Workspace()
    with ws.claim() as held:  # another call holds it: this one allocates its own
        assert held is ws
        assert np.array_equal(fuse_gray(model, *pair, tile=64, reference_whole_pixels=0, workspace=ws),
                              alone)
        assert ws.nbytes == 0
    with ws.claim() as again:
        assert again is ws


def test_a_fuser_keeps_a_workspace_for_reference_models(pair, tmp_path):
    from pmgi_gui.core.fusion import PmgiFuser

    ckpt = random_checkpoint(tmp_path / "ref", normalisation="reference", seed=12)
    fuser = PmgiFuser(ckpt, device="cpu", tile=64)
    big = [np.tile(p, (2, 2)) for p in pair]  # above the size that runs whole
    fused = fuser(*big)
    assert fuser.workspace.nbytes > 0
    expected = fuse_gray(ckpt.load_model(), *big, tile=64) * 127.5 + 127.5
    assert np.abs(fused - expected).max() < 1e-3
