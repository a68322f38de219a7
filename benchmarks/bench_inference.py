"""Inference speed and memory: our engine against a naive eager forward, same run.

For ir-vis pairs of 0.25, 1, 4 and 16 megapixels, on the chosen device:
  (a) our engine, default configuration, with a `batch` checkpoint (the shipped
      `paper` checkpoint if installed, else random batch-norm weights);
  (b) our engine with a `reference` checkpoint (--reference-checkpoint, else the
      authors' ir-vis checkpoint imported from ../shared when TensorFlow is
      installed, else random weights: the speed does not depend on the values);
  (c) a naive whole-image eager PyTorch forward of the same network (contiguous
      NCHW layout, per-image normalisation, as the released test script runs it);
  (a16), (b16): (a) and (b) in reduced precision, bf16 on the CPU and fp16 on CUDA
      (not run by default),
      with the largest difference from fp32 on the timed input.
Each configuration runs in its own process (so peak memory is its own): a
warm-up, then several timed repetitions; medians are quoted, and the warm-up's
time as "1st" (a fuser keeps (b)'s level cache between calls, so only its first
call touches fresh memory). Prints seconds per megapixel (wall and the process's
CPU time), peak resident memory, the ratios (c)/(a), (c)/(b) and (b)/(a), the
network's floating-point operations per pixel and the fraction of the CPU's peak;
writes JSON beside the table (benchmarks/results/inference-<device>.json).

On a machine that other processes keep busy, wall times grow and the ratios favour
the engine (its tiles run on independent worker threads, the eager forward's
convolutions wait on every intra-op thread): compare CPU times as well.

    python benchmarks/bench_inference.py [--device cpu|cuda] [--sizes 0.25,1,4,16] [--reps 3]
        [--configs a,b,c] [--reference-checkpoint DIR] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PMGI_SHARED", ROOT.parent / "shared"))
CONFIGS = {"a": "engine, batch checkpoint", "b": "engine, reference checkpoint",
           "c": "naive eager forward (reference)", "a16": "engine, batch checkpoint, bf16/fp16",
           "b16": "engine, reference checkpoint, bf16/fp16"}


def flops_per_pixel() -> int:
    """Multiply-adds x 2 of every convolution, per output pixel (both paths)."""
    from pmgi_gui.core.network import LAYERS

    macs = sum(2 * k * k * cin * 16 for _, k, cin in LAYERS)  # two paths
    macs += 128  # the 1x1 output convolution
    return 2 * macs


def cpu_peak_gflops() -> tuple[float | None, str]:
    """Peak fp32 rate estimated from the cores, the clock and the vector units the
    CPU reports (lscpu / /proc/cpuinfo): FMA lanes x 2 FLOPs x FMA pipes."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, "no /proc/cpuinfo"
    flags = set(re.search(r"^flags\s*:(.*)$", info, re.M).group(1).split())
    model = re.search(r"^model name\s*:(.*)$", info, re.M).group(1).strip()
    mhz = None
    m = re.search(r"^cpu MHz\s*:\s*([\d.]+)", info, re.M)
    if m:
        mhz = float(m.group(1))
    bogo = re.search(r"^bogomips\s*:\s*([\d.]+)", info, re.M)
    if (mhz is None or mhz < 500) and bogo:
        mhz = float(bogo.group(1)) / 2  # x86 BogoMIPS is twice the base clock
    cores = os.cpu_count() or 1
    amd = "AMD" in model or "AuthenticAMD" in info
    if "avx512f" in flags and not amd:
        lanes, why = 16, "AVX-512 (16 fp32 lanes)"
    elif "avx512f" in flags:
        lanes, why = 8, "AVX-512 executed on 256-bit units (AMD Zen 4: 8 fp32 lanes per pipe)"
    elif "avx2" in flags:
        lanes, why = 8, "AVX2 (8 fp32 lanes)"
    else:
        lanes, why = 4, "SSE (4 fp32 lanes)"
    pipes = 2 if "fma" in flags else 1
    peak = cores * (mhz or 0) / 1000 * lanes * 2 * pipes
    return peak, (f"{cores} cores x {mhz:.0f} MHz x {lanes} lanes x 2 (FMA) x {pipes} FMA pipes = "
                  f"{peak:.0f} GFLOP/s ({model}; {why}; clock from /proc/cpuinfo, no boost)")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _checkpoint(kind: str, tmp: Path, given: str | None = None):
    from pmgi_gui.core.checkpoints import import_official, list_checkpoints, load_checkpoint

    if given:
        return load_checkpoint(given), f"{load_checkpoint(given).label} ({given})"
    if kind == "batch":
        shipped = sorted((c for c in list_checkpoints("ir-vis") if c.normalisation == "batch"),
                         key=lambda c: c.name != "paper")  # the task's default first
        if shipped:
            return shipped[0], f"shipped {shipped[0].name}"
    else:
        official = next((SHARED / "reference" / "pmgi-official" / "ir-vis").glob("*.index"), None) \
            if (SHARED / "reference").is_dir() else None
        if official is not None:
            try:
                return import_official(str(official)[:-6], "ir-vis", tmp / "official"), \
                    "official ir-vis (imported)"
            except Exception:  # no TensorFlow: random weights time the same
                pass
    sys.path.insert(0, str(ROOT))
    from tests.helpers import random_checkpoint

    return random_checkpoint(tmp / kind, task="ir-vis", normalisation=kind), f"random {kind} weights"


def child(config: str, megapixels: float, device: str, reps: int, ckpt_path: str,
          source: str, threads: int | None = None) -> dict:
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch

    if threads:
        torch.set_num_threads(threads)

    from pmgi_gui.core.checkpoints import load_checkpoint
    from pmgi_gui.core.engine import choose_device
    from pmgi_gui.core.fusion import PmgiFuser, fuse
    from pmgi_gui.core.network import to_network

    dev = choose_device(device)
    side = int(round((megapixels * 1e6) ** 0.5))
    rng = np.random.default_rng(0)
    ir = rng.integers(0, 256, (side, side), dtype=np.uint8)
    vis = rng.integers(0, 256, (side, side), dtype=np.uint8)
    ckpt = load_checkpoint(ckpt_path)
    half_error = None
    if config != "c":
        half = "fp16" if dev.type == "cuda" else "bf16"
        precision = half if config.endswith("16") else "fp32"
        fuser = PmgiFuser(ckpt, device=dev.type, precision=precision)
        if precision != "fp32":  # gray levels, network output (unclipped), against fp32
            exact = PmgiFuser(ckpt, device=dev.type)(ir.astype(np.float32), vis.astype(np.float32))
            approx = fuser(ir.astype(np.float32), vis.astype(np.float32))
            diff = np.abs(approx - exact)
            half_error = {"precision": precision, "max_gray": float(diff.max()),
                          "mean_gray": float(diff.mean())}
            del exact, approx, diff

        def run():
            fuse("ir-vis", ir, vis, fuser=fuser)
    else:
        model = ckpt.load_model().to(dev)

        def run():
            with torch.inference_mode():
                a = to_network(torch.from_numpy(ir.astype(np.float32)))[None, None].to(dev)
                b = to_network(torch.from_numpy(vis.astype(np.float32)))[None, None].to(dev)
                y = model(a, b)
                (y * 127.5 + 127.5).clamp(0, 255).round().to(torch.uint8).cpu()
    start = time.perf_counter()
    run()  # warm-up: also the first call's time (kernels chosen, fresh memory touched)
    first = time.perf_counter() - start
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, cpu = [], []
    for _ in range(reps):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
    mp = side * side / 1e6
    return {"config": config, "megapixels": mp, "side": side, "device": dev.type,
            "checkpoint": source, "seconds": times, "cpu_seconds": cpu,
            "median_s": float(np.median(times)), "s_per_mp": float(np.median(times)) / mp,
            "cpu_s_per_mp": float(np.median(cpu)) / mp, "first_s_per_mp": first / mp,
            "half_error": half_error,
            "peak_rss_mb": _peak_rss_mb(), "gpu_peak_mb": gpu_peak,
            "threads": torch.get_num_threads(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}


def _naive_fits(megapixels: float) -> bool:
    # The eager forward keeps ~1.3 kB of activations per pixel alive at its peak.
    need = megapixels * 1e6 * 1300
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return True
    return need < 0.8 * avail


def main() -> None:
    parser = argparse.ArgumentParser(description="PMGI inference benchmark")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="0.25,1,4,16")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--configs", default="a,b,c", help="any of a,b,c,a16,b16")
    parser.add_argument("--reference-checkpoint", help="a reference checkpoint in our format for (b)")
    parser.add_argument("--threads", type=int, help="torch threads in each measured process "
                        "(default: torch's, one per core); 1 compares work per core on a busy machine")
    parser.add_argument("--out", help="JSON file (default benchmarks/results/inference-<device>.json)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        config, mp, path, source = args.child
        print(json.dumps(child(config, float(mp), args.device, args.reps, path, source, args.threads)))
        return
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configs {sorted(unknown)}; choose from {', '.join(CONFIGS)}")
    sys.path.insert(0, str(ROOT))
    # Checkpoints are made here, once: importing the official one loads TensorFlow,
    # which must not count in the measured processes' memory.
    tmp = Path(tempfile.mkdtemp(prefix="pmgi-bench-"))
    ckpts = {"batch": _checkpoint("batch", tmp),
             "reference": _checkpoint("reference", tmp, args.reference_checkpoint)}
    fpp = flops_per_pixel()
    peak, peak_how = cpu_peak_gflops()
    results = []
    for mp in (float(s) for s in args.sizes.split(",")):
        for config in configs:
            if config == "c" and args.device == "cpu" and not _naive_fits(mp):
                results.append({"config": config, "megapixels": mp, "skipped":
                                "needs more memory than is free (~1.3 kB per pixel)"})
                continue
            ckpt, source = ckpts["batch" if config.startswith("a") else "reference"]
            cmd = [sys.executable, __file__, "--child", config, str(mp), str(ckpt.path), source,
                   "--device", args.device, "--reps", str(args.reps)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
                results.append({"config": config, "megapixels": mp, "skipped": tail[0]})
            else:
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"  done {config} at {mp} MP", file=sys.stderr)
    threads = next((r["threads"] for r in results if "threads" in r), None)
    print(f"\nPMGI inference on {args.device} ({platform.processor() or platform.machine()}, "
          f"{threads} threads); {fpp} FLOPs per pixel; CPU peak estimate: {peak_how}")
    for name in sorted({r["checkpoint"] for r in results if "checkpoint" in r}):
        print(f"  checkpoint: {name}")
    print(f"{'MP':>6}  {'config':<36} {'s/MP':>7} {'CPU s/MP':>9} {'1st s/MP':>9} {'peak MB':>8} "
          f"{'GFLOP/s':>8} {'of peak':>8}  load")
    by = {(r["config"], round(r["megapixels"], 2)): r for r in results}
    for r in results:
        name = CONFIGS[r["config"]]
        if "skipped" in r:
            print(f"{r['megapixels']:>6.2f}  {name:<36} skipped: {r['skipped']}")
            continue
        rate = fpp / r["s_per_mp"] / 1e3  # GFLOP/s
        mem = r["gpu_peak_mb"] if r["gpu_peak_mb"] is not None else r["peak_rss_mb"]
        frac = f"{rate / peak:.0%}" if peak and args.device == "cpu" else "-"
        load = f"{r['load_average'][0]:.1f}" if r.get("load_average") else "-"
        print(f"{r['megapixels']:>6.2f}  {name:<36} {r['s_per_mp']:>7.3f} {r['cpu_s_per_mp']:>9.3f} "
              f"{r['first_s_per_mp']:>9.3f} {mem:>8.0f} {rate:>8.1f} {frac:>8}  {load}")
    print("\nratios of seconds per megapixel (same run; CPU-time ratios in brackets):")
    for mp in sorted({round(r["megapixels"], 2) for r in results}):
        ok = lambda r: r is not None and "skipped" not in r  # noqa: E731
        parts = []
        for num, den in (("c", "a"), ("c", "b"), ("b", "a"), ("a", "a16"), ("b", "b16")):
            n, d = by.get((num, mp)), by.get((den, mp))
            if ok(n) and ok(d):
                parts.append(f"({num})/({den}) = {n['s_per_mp'] / d['s_per_mp']:.2f} "
                             f"[{n['cpu_s_per_mp'] / d['cpu_s_per_mp']:.2f}]")
        print(f"  {mp:>6.2f} MP: " + ", ".join(parts))
    errors = [(r["config"], r["megapixels"], r["half_error"]) for r in results if r.get("half_error")]
    if errors:
        print("\nreduced precision against fp32, network output in gray levels (0..255), "
              "random-noise inputs:")
        for config, mp, e in errors:
            print(f"  ({config}, {e['precision']}) {mp:.2f} MP: max {e['max_gray']:.2f}, "
                  f"mean {e['mean_gray']:.4f}")
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"inference-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": args.device, "flops_per_pixel": fpp,
                               "cpu_peak_gflops": peak, "cpu_peak_how": peak_how,
                               "results": results}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
