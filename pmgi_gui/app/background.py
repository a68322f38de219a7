"""Work off the GUI thread: one ``QObject`` worker on its own ``QThread``, wired one way
for every worker of the application (fusion, fine-tuning, listing the devices).

The wiring is superqt's ``new_worker_qthread``: ``thread.started -> worker.run``,
``worker.finished/failed -> thread.quit`` and ``thread.finished -> thread.deleteLater``,
but not its ``worker.deleteLater``. An owner holds its worker and thread in a
:class:`WorkerThread`, which runs one at a time, says when the thread has ended, and
on close stops it with :func:`stop_worker` (cancel, request interruption, quit, wait),
as Qt's mandelbrot example does.

Why the worker is not deleted in its own thread: QObject's destructor calls the
sender's ``disconnectNotify`` for each connection it receives (``thread.started ->
worker.run``) while it holds Qt's connection locks, and PySide's override of that
needs the GIL. Meanwhile the GUI thread, holding the GIL, takes the same locks whenever
it connects or disconnects (pyqtgraph does, laying out its plots): a deadlock, caught
in the test suite with gdb (the "find-devices" thread in ~QObject waiting for the GIL,
the GUI thread in QMetaObject::disconnect). So the owner drops its reference on the GUI
thread once the thread has ended, and Python deletes the worker there, GIL held.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

__all__ = ["CancellableWorker", "WorkerThread", "start_worker", "stop_worker"]

log = logging.getLogger(__name__)


class CancellableWorker(QObject):
    """A worker whose ``run`` checks :meth:`is_cancelled` between steps; subclasses
    declare the ``finished`` and ``failed`` signals and ``run``."""

    def __init__(self):
        super().__init__()
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Thread-safe: called from the GUI thread while ``run`` works."""
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()


def start_worker(worker: QObject, name: str,
                 on_thread_finished: Callable[[], None] | None = None) -> QThread:
    """Move ``worker`` (with ``run`` and ``finished``/``failed`` signals) to a new
    thread named ``name`` and start it; returns the thread, for the owner to keep.

    Connect the owner's slots to the worker's signals before calling this: a quick
    worker may emit before the call returns. The owner keeps the worker and drops it in
    ``on_thread_finished`` (on the GUI thread): that is where it is deleted.
    """
    thread = QThread()
    thread.setObjectName(name)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    for signal in (worker.finished, worker.failed):
        signal.connect(thread.quit)
    if on_thread_finished is not None:
        thread.finished.connect(on_thread_finished)
    thread.finished.connect(thread.deleteLater)
    thread.start()
    return thread


def stop_worker(thread: QThread, worker: QObject | None, timeout_ms: int) -> bool:
    """Cancel ``worker`` (when it can be), quit its thread and wait up to ``timeout_ms``
    for it to end (the owner is closing). True if it ended."""
    cancel = getattr(worker, "cancel", None)
    if cancel is not None:
        cancel()
    thread.requestInterruption()
    thread.quit()
    ended = thread.wait(timeout_ms)
    if not ended:
        log.error("thread %s did not stop within %d ms", thread.objectName(), timeout_ms)
    return ended


class WorkerThread(QObject):
    """An owner's one worker at a time and its thread: the references Qt needs kept,
    ``ended`` once the thread has ended, and :meth:`stop` for closing."""

    ended = Signal()  # the thread of the worker started last has ended (not after stop())

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.thread: QThread | None = None
        self.worker: QObject | None = None

    def is_running(self) -> bool:
        return self.thread is not None

    def start(self, worker: QObject, name: str) -> None:
        """Run ``worker`` (its signals already connected) on a new thread."""
        if self.thread is not None:
            raise RuntimeError(f"{self.thread.objectName()} is still running")
        self.worker = worker
        self.thread = start_worker(worker, name, self._on_thread_finished)

    def stop(self, timeout_ms: int = 30000) -> bool:
        """Cancel the worker, quit and wait for the thread. True if it ended (or none ran)."""
        if self.thread is None:
            return True
        ended = stop_worker(self.thread, self.worker, timeout_ms)
        if ended:
            self.thread = self.worker = None
        return ended

    @Slot()
    def _on_thread_finished(self) -> None:
        if self.thread is None or self.sender() != self.thread:
            return  # a thread that stop() already waited for
        self.thread = self.worker = None
        self.ended.emit()
