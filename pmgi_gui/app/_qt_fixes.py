"""Work-arounds for defects of the Qt binding, applied once when the Qt layer is imported.

PySide6 6.12.0 returns ``True`` from ``SignalInstance.emit`` without taking a
reference to it, so every ``emit`` from Python (ours and pyqtgraph's, thousands
per minute while panning or fusing) lowers the reference count of ``True`` by
one. On Python 3.12 and later ``True`` is immortal and nothing happens; on 3.10
and 3.11 the count reaches zero after a few thousand emits and the interpreter
aborts ("bool_dealloc: deallocating True or False"). ``True`` and ``False`` are
static objects that are never freed, so giving them the huge reference count that
3.12 gives every immortal object is harmless, and it is only done when a probe
shows the defect.
"""

from __future__ import annotations

import sys

__all__ = ["emit_leaks_true", "apply"]

_applied = False


def emit_leaks_true() -> bool:
    """Whether ``Signal.emit`` drops a reference to ``True`` (PySide6 6.12.0)."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(8):
        probe.ping.emit()
    leaked = sys.getrefcount(True) < before - 4
    if leaked:  # give back what the probe itself took
        _add_references(True, before - sys.getrefcount(True))
    return leaked


def _add_references(obj: object, n: int) -> None:
    import ctypes

    # ob_refcnt is the first field of every CPython object.
    ctypes.c_ssize_t.from_address(id(obj)).value += n


def apply() -> None:
    global _applied
    if _applied:
        return
    _applied = True
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return  # bools are immortal there
    if emit_leaks_true():
        for obj in (True, False):
            _add_references(obj, 1 << 40)


apply()
