"""What does the GUI thread do when a large result arrives? (target: no event over 20 ms)

The responsiveness benchmark (bench_gui_responsiveness.py) fuses for minutes and its
longest gap is noisy on a loaded machine; this one skips the fusion. It opens the
window offscreen on a synthetic 4096x4096 ir-vis pair, then delivers a made-up job's
signals as the runner relays the worker's (a result with its display pictures made
as the worker makes them, its metrics, the end of the job), each from the event loop,
and times every event the GUI thread handles meanwhile (``QApplication.notify``:
slots of queued signals, paints, timers), plus the window's slots and pyqtgraph's
image rendering by name. Then it does what a user does next: the comparison modes
(with the swipe divider dragged), zooming in and out. It prints each step's slowest
event and the timed calls.

    python benchmarks/bench_result_display.py [--size 4096] [--colour | --pan] [--repeat 2]

``--pan``: a pan-sharpening pair instead (11-bit PAN of --size, 4-band MS of a
quarter of it), so that comparisons with A need the MS brought to the PAN grid.

A benchmark, not a test: its figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 20.0

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--colour", action="store_true", help="an RGB visible image")
    parser.add_argument("--pan", action="store_true", help="a 4-band pan-sharpening pair")
    parser.add_argument("--repeat", type=int, default=2, help="deliver the job this many times")
    parser.add_argument("--profile", metavar="TEXT", default=None,
                        help="cProfile the steps whose name holds TEXT (e.g. 'result arrives')")
    args = parser.parse_args()

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = tempfile.TemporaryDirectory(prefix="pmgi-bench-display-")
    tmp_path = Path(tmp.name)
    os.environ["PMGI_USER_DIR"] = str(tmp_path / "user")
    os.environ["PMGI_CONFIG_DIR"] = str(tmp_path / "config")

    import numpy as np
    from PySide6.QtCore import QEventLoop, QTimer

    from _gui_events import EventLog, time_calls, time_gc, timed_application, window_targets
    from bench_gui_responsiveness import synthetic_pair

    log = EventLog(min_ms=2.0)
    app = timed_application([sys.argv[0]], log)

    from pmgi_gui.app import worker
    from pmgi_gui.app.main_window import MainWindow
    from pmgi_gui.app.settings import Settings
    from pmgi_gui.core.comparison import task_display
    from pmgi_gui.core.fusion import PMGI_METHOD, FusionResult
    from pmgi_gui.core.imageio import write_image
    from pmgi_gui.paths import user_checkpoints_dir
    from tests.helpers import random_checkpoint

    time_calls(log, window_targets())
    task = "pan-sharpening" if args.pan else "ir-vis"
    random_checkpoint(user_checkpoints_dir() / task / "random", task)
    ir, vis = synthetic_pair(args.size, args.colour)
    Settings(task=task).save()
    window = MainWindow(find_devices=False)
    window.show()
    window.resize(1500, 850)
    if args.pan:
        from pmgi_gui.app.sources import Source

        pan = (vis.astype(np.uint16) * 8)
        ms = np.dstack([ir[::4, ::4], vis[::4, ::4], ir[1::4, 1::4], vis[2::4, 2::4]])
        window.set_sources(Source(ms.astype(np.uint16) * 8, label="ms"), Source(pan, label="pan"))
    else:
        folder = tmp_path / "pair"
        folder.mkdir()
        write_image(folder / "ir.png", ir)
        write_image(folder / "vis.png", vis)
        if not window.load_pair_folder(folder):
            print("cannot load the pair:", window.messages[-1:])
            return 2
    window.select_checkpoint("random")
    window.pmgi_check.setChecked(True)
    for box in window.baseline_checks.values():
        box.setChecked(False)

    def spin(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    spin(800)  # the sources' first paint belongs to loading

    # A fused-looking result, and its pictures made as the worker makes them.
    luma = vis if vis.ndim == 2 else vis[..., 1]
    fused = ((ir.astype(np.uint16) + luma) // 2).astype(np.uint8)
    if vis.ndim == 3:
        fused = np.ascontiguousarray(np.dstack([fused, vis[..., 1], vis[..., 2]]))
    if args.pan:
        fused = np.ascontiguousarray(np.dstack([fused, luma, fused, luma]).astype(np.uint16) * 8)
    del ir, vis, luma
    t0 = time.perf_counter()
    display = task_display(task, fused, window._peak)  # as FusionWorker.run makes it
    worker_ms = (time.perf_counter() - t0) * 1000.0
    stop_gc = time_gc(log)

    steps: list[tuple[str, float, float]] = []

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()

    def step(label: str, action, settle_ms: int = 400) -> None:
        profiling = profiler is not None and args.profile in label
        if profiling:
            profiler.enable()
        start = time.perf_counter()
        QTimer.singleShot(0, action)
        spin(settle_ms)
        steps.append((label, start, time.perf_counter()))
        if profiling:
            profiler.disable()

    def drag(panel, frm: float, to: float, n: int = 20):
        """The swipe divider dragged over ``n`` positions, one every 15 ms."""
        def go():
            for i in range(n):
                x = frm + (to - frm) * (i + 1) / n
                QTimer.singleShot(15 * i, lambda x=x: panel.divider.setValue(x))
        return go

    first = time.perf_counter()
    runner = window.runner
    for n in range(args.repeat):
        # What pressing Fuse does before the worker's first signal; no job runs: the
        # runner's own signals are emitted, as it relays the worker's.
        job_id = n + 1
        window._clear_results()
        window._method_order = [PMGI_METHOD]
        window.metrics_panel.set_order([PMGI_METHOD])
        window.set_compare_mode("fused")
        spin(300)
        result = FusionResult(task, PMGI_METHOD, fused, 12.3, "cpu", "random", "0" * 64)
        outcome = worker.MethodOutcome(job_id, PMGI_METHOD, "PMGI", result, {}, display=display)
        keys = [s.key for s in window.metrics_panel.specs]
        scored = worker.MethodOutcome(job_id, PMGI_METHOD, "PMGI", result,
                                      {k: 1.0 + i for i, k in enumerate(keys)}, display=display)
        step(f"{n}: result arrives", lambda: runner.method_finished.emit(outcome), 1000)
        step(f"{n}: metrics arrive", lambda: runner.metrics_ready.emit(scored))
        step(f"{n}: job ends", lambda: (
            runner.progress.emit(job_id, 1.0, "done"),
            runner.finished.emit(worker.JobSummary(job_id, False, (outcome,), 1.0))))
        window.reference_combo.setCurrentIndex(window.reference_combo.findData("a"))
        for mode in ("swipe", "difference", "flicker", "fused"):
            step(f"{n}: {mode} view", lambda m=mode: window.set_compare_mode(m), 600)
            if mode == "swipe":
                step(f"{n}: swipe divider dragged", drag(window.panel_fused, 500, 3500), 800)
        vb = window.panel_fused.viewbox
        step(f"{n}: zoom in", lambda: vb.setRange(xRange=(1000, 1400), yRange=(1000, 1400), padding=0))
        step(f"{n}: zoom out", lambda: vb.autoRange(padding=0))
    last = time.perf_counter()
    stop_gc()

    kind = " (RGB)" if args.colour else " (4 bands, 11 bits)" if args.pan else ""
    print(f"{args.size}x{args.size} {task}{kind} result; "
          f"display pictures made (off the GUI thread) in {worker_ms:.0f} ms")
    worst = (0.0, "")
    for label, start, end in steps:
        inside = log.between(start, end)
        total = sum(ms for _, ms, _ in inside)
        top = max(((ms, what) for _, ms, what in inside), default=(0.0, "-"))
        worst = max(worst, (top[0], f"{label}: {top[1]}"))
        print(f"{label:28s} events >= {log.min_ms:.0f} ms: {len(inside):3d}, {total:6.1f} ms in all, "
              f"slowest {top[0]:6.1f} ms ({top[1]})")
    print("\nall steps:")
    print("\n".join(log.summary(first, last, top=5)))
    print(f"\nslowest GUI-thread event: {worst[0]:.1f} ms ({worst[1]}); target <= {TARGET_MS:.0f} ms: "
          f"{'met' if worst[0] <= TARGET_MS else 'NOT met'}")
    if profiler is not None:
        import pstats

        print(f"\nGUI thread in the steps named '{args.profile}', by internal time:")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    window.close()
    app.processEvents()
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
