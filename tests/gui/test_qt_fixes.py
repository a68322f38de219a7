"""Many signal emits must not exhaust the reference count of True (PySide6 6.12.0)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal

from pmgi_gui.app import _qt_fixes


class _Emitter(QObject):
    ping = Signal(int)


def test_emits_do_not_exhaust_true():
    _qt_fixes.apply()
    e = _Emitter()
    before = sys.getrefcount(True)
    for i in range(20_000):  # more than True's reference count without the fix
        e.ping.emit(i)
    assert sys.getrefcount(True) > 10_000
    assert before - sys.getrefcount(True) <= 20_000
