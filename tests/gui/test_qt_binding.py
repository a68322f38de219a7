"""The Qt binding must not corrupt reference counts when signals are emitted.

PySide6 6.12.0 drops a reference to True on every SignalInstance.emit(); on Python
3.10/3.11 the interpreter aborts after a few thousand emits (a fusion with the
metrics panel emits that many). pyproject.toml keeps PySide6 below 6.12.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    ping = Signal(int)


def test_signal_emit_keeps_the_reference_count_of_true():
    e = _Emitter()
    before = sys.getrefcount(True)
    for i in range(2000):
        e.ping.emit(i)
    assert abs(sys.getrefcount(True) - before) < 100
