"""Peak memory of a large ir-vis fusion on the CPU (issue: pipelines; target < 1.5 GB at 4096x4096).

Each measurement runs in a fresh process so that peaks do not mix; the figure is the
process's peak resident set (ru_maxrss), with the resident set after imports beside it.

    python benchmarks/bench_memory.py [--size 4096] [--tile 256] [--normalisation batch]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pmgi_gui.core.spec import DEFAULT_TILE  # noqa: E402  (torch-free)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def child(size: int, tile: int, normalisation: str) -> None:
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch

    from pmgi_gui.core.fusion import PmgiFuser, fuse
    from tests.helpers import random_checkpoint

    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = random_checkpoint(Path(tmp) / "c", task="ir-vis", normalisation=normalisation)
        rng = np.random.default_rng(0)
        ir = rng.integers(0, 256, (size, size), dtype=np.uint8)
        vis = rng.integers(0, 256, (size, size), dtype=np.uint8)
        fuser = PmgiFuser(ckpt, device="cpu", tile=tile)
        fuser.model(None)
        base = _rss_mb()
        start = time.perf_counter()
        out = fuse("ir-vis", ir, vis, fuser=fuser).pixels
        seconds = time.perf_counter() - start
    print(json.dumps({"size": size, "tile": tile, "normalisation": normalisation,
                      "rss_after_setup_mb": round(base, 1), "peak_rss_mb": round(_rss_mb(), 1),
                      "seconds": round(seconds, 2), "output": list(out.shape)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE)
    parser.add_argument("--normalisation", default="batch", choices=("batch", "reference", "none"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.size, args.tile, args.normalisation)
        return
    cmd = [sys.executable, __file__, "--child", "--size", str(args.size), "--tile", str(args.tile),
           "--normalisation", args.normalisation]
    result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    print(f"{result['size']}x{result['size']} ir-vis, {result['normalisation']} checkpoint, "
          f"tile {result['tile']}, CPU: peak RSS {result['peak_rss_mb']:.0f} MB "
          f"(after setup {result['rss_after_setup_mb']:.0f} MB), {result['seconds']:.1f} s; "
          f"target < 1536 MB: {'met' if result['peak_rss_mb'] < 1536 else 'NOT met'}")


if __name__ == "__main__":
    main()
