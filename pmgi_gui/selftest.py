"""``pmgi-gui --self-test``: a headless check that an installation (a source checkout
or a frozen bundle) can do its job: every shipped checkpoint loads, each task's demo
pair fuses, and the metrics compute. One line per task; non-zero exit on any failure."""

from __future__ import annotations

import sys
import time
import traceback
from typing import Callable

__all__ = ["self_test"]


def self_test(write: Callable[[str], None] = print) -> int:
    from . import __version__, paths
    from .core import imageio
    from .core.checkpoints import list_checkpoints
    from .core.demo import demo_pair
    from .core.evaluation import score
    from .core.fusion import fuse
    from .core.tasks import TASK_NAMES

    failures = 0
    write(f"pmgi-gui {__version__} self-test ({'frozen bundle' if getattr(sys, 'frozen', False) else 'source'}; "
          f"weights in {paths.weights_dir()})")
    for task in TASK_NAMES:
        start = time.perf_counter()
        try:
            shipped = [c for c in list_checkpoints(task) if paths.weights_dir() in c.path.parents]
            if not shipped:
                raise RuntimeError("no shipped checkpoint")
            for ckpt in shipped:
                for band in (ckpt.bands or [None]):
                    ckpt.load_model(band)  # hash, shapes and finiteness are checked on load
            default = next((c for c in shipped if c.name == "paper"), shipped[0])
            path_a, path_b = demo_pair(task)
            a, b = imageio.read_image(path_a), imageio.read_image(path_b)
            result = fuse(task, a, b, checkpoint=default, device="cpu")
            values = score(task, a, b, result.pixels)
            bad = [k for k, v in values.items() if v != v]
            if bad:
                raise RuntimeError(f"metrics not finite: {', '.join(bad)}")
            shown = ", ".join(f"{k} {v:.3f}" for k, v in list(values.items())[:3])
            h, w = result.pixels.shape[:2]
            write(f"{task}: ok - {len(shipped)} checkpoint(s), {default.name} fused the demo pair "
                  f"({w}x{h}) in {result.seconds:.2f} s; {shown} "
                  f"[{time.perf_counter() - start:.1f} s]")
        except Exception as exc:  # the self-test reports every failure, whatever its type
            failures += 1
            write(f"{task}: FAILED - {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
    write("self-test passed" if not failures else f"self-test FAILED ({failures} task(s))")
    return 1 if failures else 0
