"""Does the window stay responsive while it fuses a large pair? (target: no gap over 50 ms)

Starts the real window offscreen, loads a synthetic 4096x4096 ir-vis pair through the
window's own pair-folder path, lets it paint, then starts a QTimer ticking every 10 ms
on the GUI thread and presses Fuse (PMGI with the shipped ir-vis checkpoint, or random
weights registered in a temporary user folder when none is shipped; baselines off
unless --baselines). It waits for the worker's finished signal and a little more (the
repaint that shows the result comes after it), then prints the longest and the 99th
percentile gap between ticks, the number of ticks and the fusion time. Every gap over
the target is listed with what the job was doing then. ``--profile`` adds a cProfile
of the GUI thread alone (cProfile follows the thread that enables it). ``--events``
times every event the GUI thread handles (``QApplication.notify``; see _gui_events.py)
and lists the slowest ones with the job's phase, and the window's slots and
pyqtgraph's image drawing by name: what the GUI thread itself spent, apart from the
gaps that the machine's load or the worker's hold on the GIL add.

    python benchmarks/bench_gui_responsiveness.py [--size 4096] [--colour] [--baselines]
        [--profile] [--events]

``--colour`` makes the visible image RGB, so the result is RGB too (the ir-vis pipeline
fuses the luma and keeps the visible image's colour).

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
TARGET_MS = 50.0


def synthetic_pair(size: int, colour: bool = False):
    """A smooth infrared-like and a textured visible-like uint8 image, size x size
    (the visible one RGB if ``colour``)."""
    import numpy as np

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    texture = 127 + 60 * np.sin(x / 7.0) * np.cos(y / 11.0)
    texture += rng.normal(0, 12, (size, size)).astype(np.float32)
    hot = 180 * np.exp(-(((x - size * 0.6) ** 2 + (y - size * 0.4) ** 2) / (2 * (size / 10) ** 2)))
    ir = np.clip(0.3 * texture + hot, 0, 255).astype(np.uint8)
    vis = np.clip(texture, 0, 255).astype(np.uint8)
    if colour:
        tint = np.array([1.0, 0.85, 0.6], np.float32)
        vis = np.clip(vis[..., None] * tint + 20 * np.sin(x / 50.0)[..., None], 0, 255).astype(np.uint8)
    return ir, vis


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--tick-ms", type=int, default=10)
    parser.add_argument("--after-ms", type=int, default=1000,
                        help="keep ticking this long after the job finished (the result's repaint)")
    parser.add_argument("--colour", action="store_true", help="an RGB visible image")
    parser.add_argument("--baselines", action="store_true", help="run the ir-vis baselines too")
    parser.add_argument("--profile", action="store_true", help="cProfile the GUI thread")
    parser.add_argument("--events", action="store_true",
                        help="time each GUI-thread event and the window's slots")
    args = parser.parse_args()

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = tempfile.TemporaryDirectory(prefix="pmgi-bench-gui-")
    tmp_path = Path(tmp.name)
    os.environ["PMGI_USER_DIR"] = str(tmp_path / "user")
    os.environ["PMGI_CONFIG_DIR"] = str(tmp_path / "config")
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))

    import numpy as np
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    event_log = None
    if args.events:
        from _gui_events import EventLog, time_calls, time_gc, timed_application, window_targets

        event_log = EventLog(min_ms=5.0)
        timed_app = timed_application([sys.argv[0]], event_log)  # noqa: F841 (kept alive)
        time_calls(event_log, window_targets())

    from pmgi_gui.app.main_window import MainWindow
    from pmgi_gui.app.settings import Settings
    from pmgi_gui.core.checkpoints import list_checkpoints
    from pmgi_gui.core.imageio import write_image
    from pmgi_gui.paths import user_checkpoints_dir

    app = QApplication.instance() or QApplication([sys.argv[0]])
    checkpoint = "paper"
    if not any(c.name == checkpoint for c in list_checkpoints("ir-vis")):
        from tests.helpers import random_checkpoint

        checkpoint = "random"
        random_checkpoint(user_checkpoints_dir() / "ir-vis" / checkpoint, "ir-vis")

    ir, vis = synthetic_pair(args.size, args.colour)
    folder = tmp_path / "pair"
    folder.mkdir()
    write_image(folder / "ir.png", ir)
    write_image(folder / "vis.png", vis)
    del ir, vis

    Settings(task="ir-vis").save()
    window = MainWindow()
    window.set_device("cpu")
    window.show()
    if not window.load_pair_folder(folder):
        print("cannot load the pair:", window.messages[-1:])
        return 2
    window.select_checkpoint(checkpoint)
    window.pmgi_check.setChecked(True)
    for box in window.baseline_checks.values():
        box.setChecked(args.baselines)

    def spin(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    spin(500)  # the sources' first paint belongs to loading, not to fusing

    ticks: list[float] = []
    events: list[tuple[float, str]] = []
    timer = QTimer()
    timer.setInterval(args.tick_ms)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    window.runner.progress.connect(lambda _j, f, text: events.append((time.perf_counter(),
                                                                      f"{text} {f:.0%}")))
    window.runner.method_finished.connect(
        lambda o: events.append((time.perf_counter(), f"{o.name} result shown")))
    done = QEventLoop()
    summary = []
    window.runner.finished.connect(lambda s: (summary.append(s), done.quit()))
    window.runner.failed.connect(lambda f: (summary.append(f), done.quit()))

    stop_gc = time_gc(event_log) if event_log is not None else None
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    timer.start()
    ticks.append(time.perf_counter())
    start = ticks[0]
    window.fuse_button.click()
    done.exec()
    finished_at = time.perf_counter()
    spin(args.after_ms)
    timer.stop()
    ended = time.perf_counter()
    if profiler is not None:
        profiler.disable()
    if stop_gc is not None:
        stop_gc()

    result = summary[0] if summary else None
    if result is None or not hasattr(result, "outcomes"):
        print("fusion failed:", getattr(result, "message", result))
        window.close()
        return 2
    gaps = np.diff(np.array(ticks)) * 1000.0
    worst = int(np.argmax(gaps))
    h = w = args.size
    methods = ", ".join(o.name for o in result.outcomes)
    print(f"{w}x{h} ir-vis{' (RGB visible)' if args.colour else ''}, {methods} ({checkpoint} "
          f"checkpoint), CPU, timer every {args.tick_ms} ms on the GUI thread")
    print(f"fusion job (fusion + metrics): {result.seconds:.1f} s; "
          f"press -> finished signal {finished_at - start:.1f} s")
    for o in result.outcomes:
        print(f"  {o.name}: fusion {o.result.seconds:.1f} s")
    print(f"ticks: {len(ticks)}; longest gap {gaps.max():.1f} ms; "
          f"99th percentile {np.percentile(gaps, 99):.1f} ms; median {np.median(gaps):.1f} ms")
    print(f"target: longest gap <= {TARGET_MS:.0f} ms: "
          f"{'met' if gaps.max() <= TARGET_MS else 'NOT met'}")
    slow = [(i, g) for i, g in enumerate(gaps) if g > TARGET_MS]
    if slow:
        print(f"gaps over {TARGET_MS:.0f} ms (t from pressing Fuse; last job event before it):")
        for i, g in slow[:20]:
            t0 = ticks[i]
            before = [text for t, text in events if t <= ticks[i + 1]]
            after_end = " (after finished)" if t0 >= finished_at else ""
            print(f"  at {t0 - start:7.2f} s: {g:6.1f} ms{after_end}; "
                  f"{before[-1] if before else 'before the first event'}")
        print(f"  worst at {ticks[worst] - start:.2f} s")
    if event_log is not None:
        def phase(t: float) -> str:
            before = [text for te, text in events if te <= t]
            return before[-1] if before else "before the first event"

        print(f"\nGUI-thread events of {event_log.min_ms:.0f} ms or more (t from pressing Fuse; "
              "the job's last event before it):")
        for t, ms, what in sorted(event_log.between(start, ended), key=lambda e: -e[1])[:15]:
            after_end = " (after finished)" if t >= finished_at else ""
            print(f"  {ms:7.1f} ms at {t - start:7.2f} s{after_end}: {what}; {phase(t)}")
        print("\n".join(event_log.summary(start, ended, top=0)))
    if profiler is not None:
        import pstats

        print("\nGUI thread, by cumulative time:")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    window.close()
    app.processEvents()
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
