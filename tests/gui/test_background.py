"""Worker threads (app/background.py): a worker is deleted on the GUI thread, never in
its own, where its destructor would wait for the GIL while holding Qt's connection
locks (a deadlock with the GUI thread seen in the test suite)."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt, Signal, Slot


class _Worker(QObject):
    finished = Signal(object)
    failed = Signal(object)

    @Slot()
    def run(self) -> None:
        self.finished.emit(threading.get_ident())


def test_a_finished_worker_is_deleted_on_the_gui_thread(qtbot):
    from pmgi_gui.app.background import WorkerThread

    owner = WorkerThread()
    worker = _Worker()
    ran_in, deleted_in = [], []
    worker.finished.connect(ran_in.append)
    # Direct: the slot runs in whichever thread destroys the worker.
    worker.destroyed.connect(lambda *_: deleted_in.append(threading.get_ident()),
                             Qt.ConnectionType.DirectConnection)
    with qtbot.waitSignal(owner.ended, timeout=10_000):
        owner.start(worker, "test-worker")
        del worker  # from here the owner's reference is the only one
    qtbot.waitUntil(lambda: bool(deleted_in), timeout=5_000)
    gui = threading.get_ident()
    assert ran_in and ran_in[0] != gui  # it ran on its own thread
    assert deleted_in == [gui]  # and was deleted on this one
