"""Entry point of the ``pmgi-gui`` application."""

from __future__ import annotations

import multiprocessing
import sys


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
    import logging

    from PySide6.QtWidgets import QApplication

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication([sys.argv[0], *args])
    app.setApplicationName("PMGI Fusion Studio")
    from .main_window import MainWindow  # imports pyqtgraph and sets row-major images

    window = MainWindow()
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
