"""Entry point of the ``pmgi-gui`` application.

Options (all others go to Qt):
  --self-test        headless check of the installation (see ``pmgi_gui.selftest``)
  --quit-after MS    close the window MS milliseconds after it is shown: a smoke test of an
                     installation or a frozen bundle that needs no one to close the window
"""

from __future__ import annotations

import multiprocessing
import sys


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

    from PySide6.QtCore import QTimer
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

    window = MainWindow()
    window.show()
    if quit_after is not None:
        # Closing the last window ends the event loop, as when a person closes it.
        QTimer.singleShot(quit_after, window.close)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
