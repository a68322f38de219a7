"""Entry point of the ``pmgi-gui`` application."""

from __future__ import annotations

import multiprocessing
import sys


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()
    from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

    app = QApplication.instance() or QApplication(sys.argv if argv is None else argv)
    window = QMainWindow()
    window.setWindowTitle("PMGI Fusion Studio")
    window.setCentralWidget(QLabel("PMGI Fusion Studio: the fusion window is being built "
                                   "(use the pmgi command meanwhile)."))
    window.resize(900, 600)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
