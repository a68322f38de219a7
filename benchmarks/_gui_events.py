"""Timing what the GUI thread does, for the GUI benchmarks.

:func:`timed_application` makes the QApplication, as a subclass whose ``notify`` times
every outermost event the GUI thread handles (slots of queued signals arrive as
``MetaCall`` events, then paints, timers, ...), in wall-clock time and in the GUI
thread's own CPU time: on a loaded machine an event can take long because the
thread waited (for a core, or for the GIL held by another thread), not because it
worked. :func:`time_calls` wraps methods by name so that a slow event can be told
apart (which slot, which rendering), and :func:`time_gc` times the garbage
collector's passes (whichever thread runs them, they hold the GIL).
"""

from __future__ import annotations

import gc
import time
from collections import defaultdict

__all__ = ["EventLog", "timed_application", "time_calls", "time_gc"]


class EventLog:
    """Outermost GUI-thread events of at least ``min_ms`` as (start, ms, what), and
    the durations of the wrapped calls by name."""

    def __init__(self, min_ms: float = 2.0):
        self.min_ms = min_ms
        self.events: list[tuple[float, float, str]] = []  # (start, wall ms, what + CPU ms)
        self.calls: dict[str, list[tuple[float, float]]] = defaultdict(list)  # name -> (start, ms)
        self.gc: list[tuple[float, float, int]] = []  # (start, ms, generation)

    def between(self, start: float, end: float) -> list[tuple[float, float, str]]:
        return [e for e in self.events if start <= e[0] < end]

    def calls_between(self, start: float, end: float) -> dict[str, list[float]]:
        out = {}
        for name, values in self.calls.items():
            inside = [ms for t, ms in values if start <= t < end]
            if inside:
                out[name] = inside
        return out

    def summary(self, start: float, end: float, top: int = 12) -> list[str]:
        """Lines: the slowest events in [start, end), then the wrapped calls by name."""
        lines = []
        slow = sorted(self.between(start, end), key=lambda e: -e[1])[:top]
        for t, ms, what in slow:
            lines.append(f"  {ms:7.1f} ms at {t - start:7.2f} s: {what}")
        calls = self.calls_between(start, end)
        if calls:
            lines.append("  by name (count, median ms, max ms):")
            for name, values in sorted(calls.items()):
                values = sorted(values)
                lines.append(f"    {name:40s} {len(values):5d} {values[len(values) // 2]:7.1f} "
                             f"{values[-1]:7.1f}")
        passes = [(ms, g) for t, ms, g in self.gc if start <= t < end]
        if passes:
            worst = max(passes)
            lines.append(f"    {'gc passes (any thread)':40s} {len(passes):5d} "
                         f"{sorted(p[0] for p in passes)[len(passes) // 2]:7.1f} {worst[0]:7.1f}"
                         f" (generation {worst[1]})")
        return lines


def timed_application(argv: list[str], log: EventLog):
    """A QApplication that records its slow outermost events in ``log``."""
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    depth = [0]

    class TimedApplication(QApplication):
        def notify(self, receiver, event):  # noqa: N802 (Qt's name)
            if depth[0]:
                return super().notify(receiver, event)
            depth[0] += 1
            kind = event.type()
            c0 = time.thread_time()
            t0 = time.perf_counter()
            try:
                return super().notify(receiver, event)
            finally:
                ms = (time.perf_counter() - t0) * 1000.0
                cpu = (time.thread_time() - c0) * 1000.0
                depth[0] -= 1
                if ms >= log.min_ms:
                    try:
                        name = QEvent.Type(kind).name
                    except Exception:
                        name = str(int(kind))
                    try:
                        target = type(receiver).__name__
                    except RuntimeError:
                        target = "(deleted)"
                    log.events.append((t0, ms, f"{name} -> {target}, GUI thread CPU {cpu:.1f} ms"))

    return TimedApplication(argv)


def time_calls(log: EventLog, targets: list[tuple[object, str, str]]) -> None:
    """Wrap ``owner.name`` for each (owner, name, label) so that its calls are timed."""
    for owner, name, label in targets:
        original = getattr(owner, name)

        def wrapper(*args, _original=original, _label=label, **kwargs):
            t0 = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                log.calls[_label].append((t0, (time.perf_counter() - t0) * 1000.0))

        wrapper.__name__ = name
        wrapper.__doc__ = original.__doc__
        setattr(owner, name, wrapper)


def time_gc(log: EventLog):
    """Record every collection in ``log``; returns a function that stops recording."""
    started = {}

    def callback(phase, info):
        if phase == "start":
            started["t"] = time.perf_counter()
        elif "t" in started:
            t0 = started.pop("t")
            log.gc.append((t0, (time.perf_counter() - t0) * 1000.0, info.get("generation", -1)))

    gc.callbacks.append(callback)
    return lambda: gc.callbacks.remove(callback)


def window_targets() -> list[tuple[object, str, str]]:
    """The window's slots and drawing that run when a result arrives, for :func:`time_calls`
    (call before the window is made: connections keep the method they were given)."""
    import pyqtgraph as pg

    from pmgi_gui.app import main_window, metrics_panel, views, worker

    mw = main_window.MainWindow
    targets = [(mw, name, f"MainWindow.{name}") for name in (
        "_on_method_finished", "_on_metrics_ready", "_on_job_finished", "_on_job_failed",
        "_on_progress", "_on_busy_changed", "_refresh_fused_view", "_clear_results")]
    targets += [(views.ImagePanel, "set_image", "ImagePanel.set_image"),
                (metrics_panel.MetricsPanel, "add_result", "MetricsPanel.add_result"),
                (worker.FusionRunner, "_on_thread_finished", "FusionRunner._on_thread_finished"),
                (pg.ImageItem, "render", "pyqtgraph ImageItem.render (QImage)"),
                (pg.ImageItem, "paint", "pyqtgraph ImageItem.paint")]
    return [(o, n, label) for o, n, label in targets if hasattr(o, n)]
