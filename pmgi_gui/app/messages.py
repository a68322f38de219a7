"""Telling the user: non-modal message boxes that never block the event loop (a
fusion or a fine-tuning run goes on behind them), and the one blocking question.

The window and the fine-tune dialog each keep a :class:`MessageBoxes` and call it
from their own ``show_message``, which also logs and writes a status line; tests
replace ``ask_yes_no`` on the owner so that they never block.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

__all__ = ["MessageBoxes", "ask_yes_no"]

_ICONS = {"error": QMessageBox.Icon.Critical, "warning": QMessageBox.Icon.Warning}


def ask_yes_no(parent: QWidget, title: str, text: str) -> bool:
    """A modal Yes/No question, No by default."""
    answer = QMessageBox.question(parent, title, text,
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


class MessageBoxes:
    """The open non-modal message boxes of one window, closed with it."""

    def __init__(self, parent: QWidget):
        self.parent = parent
        self.open: list[QMessageBox] = []

    def show(self, level: str, title: str, text: str) -> QMessageBox:
        """A box with the level's icon (``error``, ``warning``, else information)."""
        box = QMessageBox(_ICONS.get(level, QMessageBox.Icon.Information), title, text,
                          QMessageBox.StandardButton.Ok, self.parent)
        box.setModal(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _=0, b=box: self._forget(b))
        self.open.append(box)
        box.show()
        return box

    def _forget(self, box: QMessageBox) -> None:
        if box in self.open:
            self.open.remove(box)

    def close_all(self) -> None:
        for box in list(self.open):
            box.close()
        self.open.clear()
