"""Entry point of the ``pmgi-gui`` application.

Options (all others go to Qt):
  --self-test        headless check of the installation (see ``pmgi_gui.selftest``)
  --quit-after MS    close the window MS milliseconds after it is shown: a smoke test of an
                     installation or a frozen bundle that needs no one to close the window

Start-up is ordered for a quick first picture: the window (which imports no torch)
is shown, then it lists the devices on a thread and fuses the demo pair, the
cheapest method first, while the worker imports torch for PMGI.

``PMGI_STARTUP_PROBE=1`` makes the window report its start-up on stdout and quit:
one line ``pmgi-startup <event> <seconds since main() began> [detail]`` for
``window_shown`` (the event loop runs with the window shown), ``first_result <method>``
(the first fused image of the demo pair is on screen) and, when PMGI runs,
``pmgi_result``; then it closes (``benchmarks/bench_startup.py`` reads these lines).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time

STARTUP_PROBE_ENV = "PMGI_STARTUP_PROBE"
PROBE_TIMEOUT_S = 120


def _pop_quit_after(args: list[str]) -> int | None:
    """Remove ``--quit-after MS`` (or ``--quit-after=MS``) from ``args``; its value or None."""
    for i, arg in enumerate(args):
        if arg == "--quit-after" or arg.startswith("--quit-after="):
            if "=" in arg:
                text, used = arg.split("=", 1)[1], 1
            else:
                text, used = (args[i + 1] if i + 1 < len(args) else ""), 2
            try:
                ms = int(text)
            except ValueError:
                ms = -1
            if ms < 0:
                raise ValueError(f"--quit-after needs a number of milliseconds >= 0, not {text!r}")
            del args[i:i + used]
            return ms
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the window (or, with ``--self-test``, the headless self-test); ``argv`` are
    the arguments without the program name (default: ``sys.argv[1:]``)."""
    # First: in a frozen build, worker processes re-enter here and must stop at once.
    multiprocessing.freeze_support()
    began = time.perf_counter()
    args = sys.argv[1:] if argv is None else list(argv)
    if "--self-test" in args:
        # Headless: checks an installation (source or frozen) without opening a window.
        from ..selftest import self_test

        return self_test()
    try:
        quit_after = _pop_quit_after(args)
    except ValueError as exc:
        print(f"pmgi-gui: error: {exc}", file=sys.stderr)
        return 2
    import logging

    from PySide6.QtCore import QCoreApplication, QEvent, QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from ..paths import resources_dir

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication([sys.argv[0], *args])
    app.setApplicationName("PMGI Fusion Studio")
    icon = resources_dir() / "icon.png"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    from .main_window import MainWindow  # imports pyqtgraph and sets row-major images

    window = MainWindow(find_devices=False)  # the device list needs torch: found later
    if os.environ.get(STARTUP_PROBE_ENV):
        _probe_startup(app, window, began)
    window.show()
    from .worker import freeze_long_lived_objects

    freeze_long_lived_objects()  # Qt, pyqtgraph, the window: kept out of full GC passes
    # Once the event loop has painted the window; the window as context cancels it with it.
    QTimer.singleShot(0, window, window.start_up)
    if quit_after is not None:
        # Closed as a person closes it (the worker stopped), then the event loop ended even
        # if another top-level window is still open, so that an installation check ends.
        QTimer.singleShot(quit_after, window, lambda: (window.close(), app.quit()))
    code = app.exec()
    # Closing the last window posts a quit of its own, which may still be queued when an
    # explicit quit() came first: left there, it would end the next event loop at once
    # (the tests run main() in a QApplication that goes on).
    QCoreApplication.removePostedEvents(app, QEvent.Type.Quit)
    return code


def _probe_startup(app, window, began: float) -> None:
    """Report when the window is shown and when the first demo result (and PMGI's)
    is on screen, then close (see the module docstring)."""
    from PySide6.QtCore import QTimer

    from ..core.fusion import PMGI_METHOD

    def report(event: str, detail: str = "") -> None:
        print(f"pmgi-startup {event} {time.perf_counter() - began:.3f} {detail}".rstrip(), flush=True)

    def end(event: str, detail: str = "") -> None:
        if closing:
            return  # closing cancels the job, whose end arrives after this
        closing.append(event)
        limit.stop()
        report(event, detail)
        window.close()  # stops the worker
        app.quit()  # even if another top-level window is open

    seen, closing = [], []

    def after_repaint(outcome) -> None:
        seen.append(outcome.method)
        if len(seen) == 1:
            report("first_result", outcome.method)
        if outcome.method == PMGI_METHOD:
            end("pmgi_result")
        elif (PMGI_METHOD, "PMGI") not in window.chosen_methods():
            end("no_pmgi")

    def result(outcome) -> None:
        # The result is on screen after the repaint that its arrival asked for.
        QTimer.singleShot(0, window, lambda: after_repaint(outcome))

    limit = QTimer(window)  # owned by the window: nothing outlives it
    limit.setSingleShot(True)
    limit.timeout.connect(lambda: end("timeout"))
    window.runner.method_finished.connect(result)
    window.runner.finished.connect(lambda _summary: end("job_finished"))
    window.runner.failed.connect(lambda failure: end("failed", failure.message))
    QTimer.singleShot(0, lambda: report("window_shown"))  # before start_up's timer
    limit.start(PROBE_TIMEOUT_S * 1000)


if __name__ == "__main__":
    sys.exit(main())
