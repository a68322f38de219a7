"""Entry point of the ``pmgi-gui`` application."""

from __future__ import annotations

import multiprocessing
import sys


def main(argv: list[str] | None = None) -> int:
    # First: in a frozen build, worker processes re-enter here and must stop at once.
    multiprocessing.freeze_support()
    import logging

    from PySide6.QtWidgets import QApplication

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication(sys.argv if argv is None else argv)
    app.setApplicationName("PMGI Fusion Studio")
    from .main_window import MainWindow  # imports pyqtgraph and sets row-major images

    window = MainWindow()
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
