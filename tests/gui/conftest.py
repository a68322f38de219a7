"""GUI test fixtures: offscreen Qt, isolated user folders, windows that never block
on a dialog, and fixtures that fail a test leaving a QThread running or a QTimer
active (as napari's ``_dangling_qthreads`` / ``_dangling_qtimers``)."""

from __future__ import annotations

import os

# Before anything imports Qt: no display needed.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import traceback  # noqa: E402
from weakref import WeakKeyDictionary  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path, monkeypatch):
    """Checkpoints and settings of a test live in its own temporary folders."""
    user, config = tmp_path / "user", tmp_path / "config"
    user.mkdir()
    config.mkdir()
    monkeypatch.setenv("PMGI_USER_DIR", str(user))
    monkeypatch.setenv("PMGI_CONFIG_DIR", str(config))
    return user, config


@pytest.fixture(autouse=True)
def _no_modal_dialogs(monkeypatch):
    """A modal dialog runs its own event loop, which nobody answers offscreen: the test
    would hang until CI's time runs out. Fail it at once instead. (The window's own
    questions go through ``ask_*`` methods, which the ``dialogs`` fixture answers.)"""
    from PySide6.QtWidgets import QDialog, QFileDialog, QMessageBox

    def refuse(what: str):
        def modal(*args, **kwargs):
            pytest.fail(f"a modal dialog was opened ({what}): offscreen nobody can answer it")
        return staticmethod(modal)

    monkeypatch.setattr(QDialog, "exec", refuse("QDialog.exec"))
    monkeypatch.setattr(QMessageBox, "exec", refuse("QMessageBox.exec"))
    for name in ("question", "critical", "warning", "information", "about"):
        monkeypatch.setattr(QMessageBox, name, refuse(f"QMessageBox.{name}"))
    for name in ("getOpenFileName", "getOpenFileNames", "getSaveFileName", "getExistingDirectory"):
        monkeypatch.setattr(QFileDialog, name, refuse(f"QFileDialog.{name}"))


def _where() -> str:
    return "".join(traceback.format_stack(limit=8)[:-2])


@pytest.fixture(autouse=True)
def _dangling_qthreads(monkeypatch, _isolated_user_dirs):
    from PySide6.QtCore import QThread

    started: WeakKeyDictionary = WeakKeyDictionary()
    base_start = QThread.start

    def start(self, *args, **kwargs):
        started[self] = _where()
        return base_start(self, *args, **kwargs)

    monkeypatch.setattr(QThread, "start", start)
    yield
    dangling = []
    for thread, where in list(started.items()):
        try:
            if thread.isRunning():
                dangling.append((thread, where))
        except RuntimeError:  # the C++ thread is already deleted: it ended
            pass
    for thread, _ in dangling:
        thread.quit()
        thread.wait(5000)
    if dangling:
        pytest.fail("test left QThread(s) running, started at:\n"
                    + "\n".join(where for _, where in dangling))


@pytest.fixture(autouse=True)
def _dangling_qtimers(monkeypatch, _dangling_qthreads):
    from PySide6.QtCore import QTimer

    started: WeakKeyDictionary = WeakKeyDictionary()
    base_start = QTimer.start

    def start(self, *args, **kwargs):
        started[self] = _where()
        return base_start(self, *args, **kwargs)

    monkeypatch.setattr(QTimer, "start", start)
    yield
    active = []
    for timer, where in list(started.items()):
        try:
            if timer.isActive():
                active.append((timer, where))
        except RuntimeError:  # deleted with its owner
            pass
    for timer, _ in active:
        timer.stop()
    if active:
        pytest.fail("test left QTimer(s) active, started at:\n" + "\n".join(w for _, w in active))


@pytest.fixture
def no_shipped_weights(tmp_path, monkeypatch):
    """The shipped weights/ folder looks empty: the state of a task without a checkpoint."""
    from pmgi_gui import paths

    empty = tmp_path / "no-shipped-weights"
    empty.mkdir()
    monkeypatch.setattr(paths, "weights_dir", lambda: empty)
    return empty


@pytest.fixture
def install_checkpoint():
    """``install_checkpoint(task, name)``: a random-weight checkpoint in the user's registry."""
    from pmgi_gui.paths import user_checkpoints_dir
    from tests.helpers import random_checkpoint

    def install(task: str = "ir-vis", name: str = "random", normalisation: str = "batch",
                seed: int = 0):
        return random_checkpoint(user_checkpoints_dir() / task / name, task, normalisation, seed)

    return install


class Dialogs:
    """Answers to the window's dialogs; an unexpected dialog fails the test."""

    def __init__(self):
        self.open_file = []
        self.directory = []
        self.save_file = []
        self.yes_no = []
        self.asked = []

    def _next(self, queue, what):
        self.asked.append(what)
        if not queue:
            pytest.fail(f"unexpected dialog: {what}")
        return queue.pop(0)


@pytest.fixture
def dialogs(monkeypatch):
    from pmgi_gui.app.main_window import MainWindow

    d = Dialogs()
    monkeypatch.setattr(MainWindow, "ask_open_file", lambda self, title, folder: d._next(d.open_file, title))
    monkeypatch.setattr(MainWindow, "ask_directory", lambda self, title, folder: d._next(d.directory, title))
    monkeypatch.setattr(MainWindow, "ask_save_file",
                        lambda self, title, suggestion, filters: d._next(d.save_file, title))
    monkeypatch.setattr(MainWindow, "ask_yes_no", lambda self, title, text: d._next(d.yes_no, text))
    return d


@pytest.fixture
def make_window(qtbot, dialogs):
    """``make_window(**kwargs)``: a shown MainWindow, closed (and checked) after the test."""
    from pmgi_gui.app.main_window import MainWindow

    windows = []

    def make(**kwargs):
        w = MainWindow(**kwargs)
        w.set_device("cpu")
        w.show()
        qtbot.waitExposed(w)
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.close()
        assert not w.runner.is_running()
        w.deleteLater()
    qtbot.wait(10)  # let deleteLater and queued signals run


@pytest.fixture
def window(make_window):
    return make_window()
