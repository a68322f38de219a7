"""The window driven as a person would: open sources, choose a preset and a
checkpoint, fuse, and read what is on screen."""

from __future__ import annotations

import numpy as np
import pytest

from pmgi_gui.core.comparison import display_peak, to_display
from pmgi_gui.core.fusion import PMGI_METHOD, methods_for
from pmgi_gui.core.imageio import read_image, write_image
from pmgi_gui.core.tasks import TASK_NAMES, get_task

from ._util import (REAL_PAIRS, fuse, gray_pair, real_pair_folder, run_main, set_methods,
                    write_pair)


def test_opens_on_the_demo_pair_of_the_last_task(make_window, no_shipped_weights):
    from pmgi_gui.app.settings import Settings

    Settings(task="medical").save()
    w = make_window()
    assert w.task == "medical"
    assert w.task_combo.currentData() == "medical"
    assert "PET" in w.panel_a.title.text() and "MRI" in w.panel_b.title.text()
    assert all(w.sources.values()) and w.pair_error is None
    assert w.panel_a.shown() is not None and w.panel_b.shown() is not None
    assert w.fuse_button.isEnabled()
    # No checkpoint installed: PMGI is off, explained, and a way to get one is offered.
    assert not w.pmgi_check.isEnabled()
    assert w.no_checkpoint_label.isVisibleTo(w)
    assert "No PMGI checkpoint" in w.no_checkpoint_label.text()
    assert w.import_button.isVisibleTo(w) and w.import_button.isEnabled()
    assert w.medical_note.isVisibleTo(w) and "not for quantitation" in w.medical_note.text()


def test_demo_pair_comes_from_the_demo_module():
    demo = pytest.importorskip("pmgi_gui.core.demo", reason="pmgi_gui.core.demo is not merged yet")
    from pmgi_gui.app.sources import demo_sources

    for task in TASK_NAMES:
        a, b = demo_sources(task)
        pa, pb = demo.demo_pair(task)
        assert a.path is not None and a.path.samefile(pa)
        assert b.path is not None and b.path.samefile(pb)


@pytest.mark.parametrize("task", list(REAL_PAIRS))
def test_fuse_a_real_pair(qtbot, make_window, install_checkpoint, task):
    folder = real_pair_folder(task)
    install_checkpoint(task, "random")
    w = make_window()
    w.set_task(task)
    t = get_task(task)
    assert t.role_a in w.open_buttons["a"].text() and t.role_b in w.open_buttons["b"].text()
    assert w.load_pair_folder(folder), w.messages
    assert w.pair_error is None
    w.select_checkpoint("random")
    assert w.lambdas_label.text().endswith(t.lambdas.describe(t))
    assert w.pmgi_check.isEnabled() and w.pmgi_check.isChecked()

    summary = fuse(qtbot, w)

    assert not summary.cancelled
    expected = [k for k, _ in methods_for(task)]
    assert [o.method for o in summary.outcomes] == expected
    assert list(w.results) == expected
    # What the fused view shows is PMGI's result, on B's grid.
    assert w.shown_method() == PMGI_METHOD
    a = read_image(next(folder.glob(t.stem_a + ".*")))
    b = read_image(next(folder.glob(t.stem_b + ".*")))
    pixels = w.results[PMGI_METHOD].result.pixels
    assert pixels.shape[:2] == b.shape[:2]
    shown = w.panel_fused.shown()
    if task == "pan-sharpening":
        assert pixels.shape[2] == a.shape[2] and pixels.dtype == a.dtype
        assert np.array_equal(shown, to_display(pixels, display_peak(a, b), spectral=True))
        # The MS view is stretched onto the PAN grid so that the views line up.
        assert w.panel_a.scale == 4.0
    else:
        assert np.array_equal(shown, pixels)
    assert shown.std() > 0
    assert w.results[PMGI_METHOD].result.checkpoint == "random"
    # Every method has a row with its run time.
    table = w.metrics_panel.table
    assert table.rowCount() == len(expected)
    for r in range(table.rowCount()):
        assert float(table.item(r, 1).text()) >= 0
    from pmgi_gui.app.worker import window_metric_keys

    keys = window_metric_keys(task)
    if keys:  # the metrics module is there: every value in the table, every bar drawn
        assert table.columnCount() == 2 + len(keys)
        for r in range(table.rowCount()):
            assert all(np.isfinite(float(table.item(r, c).text())) for c in range(2, 2 + len(keys)))
        for method in expected:
            assert len(w.metrics_panel.bar_heights(method)) == len(keys)
            assert set(w.results[method].metrics) == set(keys)
    assert "Done" in w.progress_label.text()
    assert not w.cancel_button.isEnabled()
    # The result of another method can be shown instead.
    w.show_method(expected[1])
    assert np.array_equal(w.panel_fused.shown().shape[:2], pixels.shape[:2])


def test_without_a_checkpoint_the_baselines_still_run(qtbot, no_shipped_weights, window):
    w = window
    assert not w.pmgi_check.isEnabled()
    summary = fuse(qtbot, w)
    assert [o.method for o in summary.outcomes] == [k for k, _ in methods_for(w.task)[1:]]
    assert w.shown_method() == "average"
    assert w.panel_fused.shown() is not None


def test_import_checkpoint_folder_registers_it(qtbot, no_shipped_weights, window, dialogs, tmp_path):
    from pmgi_gui.core.tasks import Lambdas
    from pmgi_gui.paths import user_checkpoints_dir
    from tests.helpers import random_checkpoint

    w = window
    outside = random_checkpoint(tmp_path / "downloads" / "my-ir", "ir-vis")
    dialogs.directory.append(outside.path)
    w.act_import.trigger()
    assert w.checkpoints_listed() == ["my-ir"]
    assert (user_checkpoints_dir() / "ir-vis" / "my-ir" / "manifest.json").is_file()
    assert w.pmgi_check.isEnabled() and w.pmgi_check.isChecked()
    assert not w.no_checkpoint_label.isVisibleTo(w)
    t = get_task("ir-vis")
    assert Lambdas(1, 4, 0.3, 5).describe(t) in w.lambdas_label.text()
    assert "infrared intensity 1, gradient 4" in w.lambdas_label.text()

    # A folder that is not a checkpoint is explained and changes nothing.
    (tmp_path / "junk").mkdir()
    dialogs.directory.append(tmp_path / "junk")
    w.act_import.trigger()
    assert w.messages[-1][1] == "Cannot import checkpoint"
    assert "no manifest.json" in w.messages[-1][2]
    assert w.checkpoints_listed() == ["my-ir"]

    summary = fuse(qtbot, w)
    assert summary.outcomes[0].method == PMGI_METHOD


def test_checkpoint_selector_gives_each_checkpoints_lambdas(make_window, no_shipped_weights,
                                                           tmp_path):
    from pmgi_gui.core.checkpoints import save_checkpoint
    from pmgi_gui.core.tasks import Lambdas
    from pmgi_gui.paths import user_checkpoints_dir
    from tests.helpers import random_model

    t = get_task("ir-vis")
    save_checkpoint(user_checkpoints_dir() / "ir-vis" / "a-paper", {"default": random_model()},
                    task="ir-vis", lambdas=t.lambdas, label="paper weights")
    mine = Lambdas(a_int=2, a_grad=1, b_int=0.5, b_grad=8)
    save_checkpoint(user_checkpoints_dir() / "ir-vis" / "b-mine", {"default": random_model()},
                    task="ir-vis", lambdas=mine, label="more visible detail")
    w = make_window()
    assert w.checkpoints_listed() == ["a-paper", "b-mine"]
    assert w.checkpoint_combo.itemText(1) == "more visible detail (b-mine)"
    w.select_checkpoint("b-mine")
    assert w.lambdas_label.text() == f"Loss weights (λ): {mine.describe(t)}"
    assert "visible intensity 0.5, gradient 8" in w.lambdas_label.text()
    assert "paper's weights" in w.checkpoint_combo.itemData(1, 3)  # ToolTipRole
    w.select_checkpoint("a-paper")
    assert "infrared intensity 1, gradient 4" in w.lambdas_label.text()


def test_shipped_checkpoints_are_offered(qtbot, window):
    from pmgi_gui import paths
    from pmgi_gui.core.checkpoints import list_checkpoints

    shipped = [c for c in list_checkpoints("ir-vis") if paths.weights_dir() in c.path.parents]
    if not shipped:
        pytest.skip("no checkpoint is shipped for ir-vis in weights/")
    w = window
    assert w.checkpoints_listed()[: len(shipped)] == [c.name for c in shipped]
    assert w.pmgi_check.isEnabled() and w.pmgi_check.isChecked()
    # A new user starts on the task's default checkpoint, whatever sorts first.
    default = next(c for c in shipped if c.name == get_task("ir-vis").default_checkpoint)
    assert w.checkpoint_combo.currentText() == f"{default.label} ({default.name})"
    assert default.lambdas.describe(get_task("ir-vis")) in w.lambdas_label.text()


def test_device_is_shown_and_selectable(window):
    w = window
    devices = [w.device_combo.itemData(i) for i in range(w.device_combo.count())]
    assert devices[:2] == ["auto", "cpu"]
    w.set_device("auto")
    assert any(d in w.device_label.text() for d in ("CPU", "CUDA", "MPS"))
    w.set_device("cpu")
    assert "PMGI runs on: CPU" in w.device_label.text()


def _big_job_window(make_window, install_checkpoint, tmp_path):
    """A window about to run a PMGI job of many tiles (so it can be caught mid-run)."""
    install_checkpoint("ir-vis")
    w = make_window()
    a, b = gray_pair(640, 640)
    w.load_pair_folder(write_pair(tmp_path / "big", "ir-vis", a, b))
    w.tile = 48
    return w


def _wait_mid_run(qtbot, w):
    with qtbot.waitSignal(w.runner.progress, timeout=60_000,
                          check_params_cb=lambda job, f, text: 0 < f < 0.5 and "PMGI" in text):
        w.request_fusion()
    assert w.runner.is_running() and w.cancel_button.isEnabled()


def test_cancel_mid_run(qtbot, make_window, install_checkpoint, tmp_path):
    w = _big_job_window(make_window, install_checkpoint, tmp_path)
    _wait_mid_run(qtbot, w)
    with qtbot.waitSignal(w.runner.finished, timeout=30_000) as blocker:
        qtbot.mouseClick(w.cancel_button, __import__("PySide6.QtCore").QtCore.Qt.MouseButton.LeftButton)
    assert blocker.args[0].cancelled
    assert PMGI_METHOD not in w.results
    assert "Cancelled" in w.progress_label.text()
    qtbot.waitUntil(lambda: not w.runner.is_running(), timeout=5000)
    assert not w.cancel_button.isEnabled()
    # Still usable: a baseline runs at once.
    set_methods(w, pmgi=False, baselines=False)
    w.baseline_checks["average"].setChecked(True)
    summary = fuse(qtbot, w)
    assert not summary.cancelled and summary.outcomes


def test_a_new_request_cancels_the_running_job(qtbot, make_window, install_checkpoint, tmp_path):
    w = _big_job_window(make_window, install_checkpoint, tmp_path)
    _wait_mid_run(qtbot, w)
    first = w.runner.current_job_id
    set_methods(w, pmgi=False, baselines=False)
    w.baseline_checks["average"].setChecked(True)
    with qtbot.waitSignal(w.runner.finished, timeout=30_000) as blocker:
        second = w.request_fusion()
    summary = blocker.args[0]
    assert second != first and summary.job_id == second and not summary.cancelled
    assert PMGI_METHOD not in w.results
    assert list(w.results) == ["average"]


def test_closing_mid_run_stops_the_worker(qtbot, make_window, install_checkpoint, tmp_path):
    w = _big_job_window(make_window, install_checkpoint, tmp_path)
    _wait_mid_run(qtbot, w)
    w.close()
    assert not w.runner.is_running()
    assert w.runner.worker is None


def test_a_corrupt_file_is_explained_and_the_window_stays_usable(qtbot, window, dialogs, tmp_path):
    w = window
    before = w.sources["a"]
    bad = tmp_path / "ir.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    dialogs.open_file.append(bad)
    w.act_open_a.trigger()
    level, title, text = w.messages[-1]
    assert level == "warning" and title == "Cannot open image" and "ir.png" in text
    assert title in w.statusBar().currentMessage()
    assert w.sources["a"] is before
    assert fuse(qtbot, w).outcomes


def test_a_size_mismatch_is_explained(qtbot, window, dialogs, tmp_path):
    w = window
    a, _ = gray_pair(100, 120)
    _, b = gray_pair(90, 120)
    write_image(tmp_path / "a.png", a)
    write_image(tmp_path / "b.png", b)
    assert w.load_source("a", tmp_path / "a.png")
    # Opening one's own A leaves the demo pair: B waits for the user's file.
    assert w.sources["b"] is None and w.panel_b.shown() is None
    assert "not loaded" in w.source_labels["b"].text() and not w.fuse_button.isEnabled()
    assert w.load_source("b", tmp_path / "b.png")
    assert "must be the same size" in w.pair_error
    assert w.messages[-1][1] == "These sources cannot be fused"
    assert "same size" in w.pair_label.text()
    assert not w.fuse_button.isEnabled()
    assert w.request_fusion() is None and not w.runner.is_running()
    # Fixing B makes the pair usable again.
    write_image(tmp_path / "b2.png", gray_pair(100, 120)[1])
    assert w.load_source("b", tmp_path / "b2.png")
    assert w.pair_error is None and w.fuse_button.isEnabled()


def test_pan_not_four_times_ms_is_explained(window, tmp_path):
    w = window
    w.set_task("pan-sharpening")
    ms = np.stack([gray_pair(16, 16)[0]] * 4, axis=-1)
    pan = gray_pair(60, 60)[1]
    write_pair(tmp_path / "pair", "pan-sharpening", ms, pan, ext=".tif")
    assert w.load_pair_folder(tmp_path / "pair")
    assert "exactly 4x" in w.pair_error and "64x64" in w.pair_error
    assert not w.fuse_button.isEnabled()


def test_a_failing_checkpoint_reaches_the_user(qtbot, window, install_checkpoint):
    ckpt = install_checkpoint("ir-vis", "damaged")
    w = window
    w.set_task("multi-focus")
    w.set_task("ir-vis")  # lists the new checkpoint
    w.select_checkpoint("damaged")
    (ckpt.path / "model.safetensors").write_bytes(b"tampered")
    with qtbot.waitSignal(w.runner.failed, timeout=30_000):
        w.request_fusion()
    level, title, text = w.messages[-1]
    assert level == "error" and "pmgi" in title and "sha256" in text
    assert "sha256" in w.log_view.toPlainText()
    qtbot.waitUntil(lambda: not w.runner.is_running(), timeout=5000)


def test_drag_and_drop_loads_a_source(qtbot, window, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    w = window
    a, b = gray_pair(w.sources["a"].pixels.shape[0], w.sources["a"].pixels.shape[1])
    write_image(tmp_path / "dropped.png", b)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "dropped.png"))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                       Qt.KeyboardModifier.NoModifier)
    w.panel_b.dropEvent(event)
    assert w.sources["b"].path == tmp_path / "dropped.png"
    assert np.array_equal(w.panel_b.shown(), b)
    # A dropped pair folder loads both.
    write_pair(tmp_path / "pair", "ir-vis", a, b)
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "pair"))])
    w.panel_a.dropEvent(QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime,
                                   Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier))
    assert w.sources["a"].path == tmp_path / "pair" / "ir.png"


def test_pmgi_gui_entry_point_opens_and_quits(qapp):
    import time

    from PySide6.QtCore import QTimer

    from pmgi_gui.app.main import main
    from pmgi_gui.app.main_window import MainWindow

    seen = []
    deadline = time.monotonic() + 60

    def close_once_shown():
        # Poll rather than fire once: the window may appear after a one-shot timer fired.
        shown = [w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if shown:
            seen.extend(shown)
            qapp.closeAllWindows()
        elif seen or time.monotonic() > deadline:
            qapp.quit()  # never hang the suite

    poll = QTimer()
    poll.timeout.connect(close_once_shown)
    poll.start(100)
    try:
        assert main([]) == 0
    finally:
        poll.stop()
    assert seen and not seen[0].runner.is_running()


def test_self_test_option_runs_headless(monkeypatch, qapp):
    import pmgi_gui.selftest
    from pmgi_gui.app.main import main

    calls = []
    monkeypatch.setattr(pmgi_gui.selftest, "self_test", lambda: calls.append(1) or 0)
    assert main(["--self-test"]) == 0 and calls == [1]
    assert not [w for w in qapp.topLevelWidgets() if w.isVisible()]


@pytest.mark.parametrize("other_window", [False, True])
def test_quit_after_option_closes_the_window_by_itself(qapp, other_window):
    from PySide6.QtWidgets import QWidget

    from pmgi_gui.app.main_window import MainWindow

    # Another top-level window still open: closing the last window would not end the loop.
    other = QWidget()
    if other_window:
        other.show()
    try:
        assert run_main(qapp, ["--quit-after", "200"], limit_ms=30_000) == 0
    finally:
        other.close()
    windows = [w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow)]
    assert windows and not any(w.isVisible() for w in windows)
    assert not any(w.runner.is_running() for w in windows)


@pytest.mark.parametrize("args", [["--quit-after"], ["--quit-after", "soon"], ["--quit-after=-5"]])
def test_quit_after_option_refuses_a_bad_value(qapp, capsys, args):
    from pmgi_gui.app.main import main

    assert main(args) == 2
    assert "--quit-after" in capsys.readouterr().err
