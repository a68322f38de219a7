"""*Fine-tune on this pair...* driven as a person would: open it on a loaded pair with a
random checkpoint, pick a preset, run, and see the new checkpoint selected and fused;
cancel; close the dialog or the window mid-run."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from pmgi_gui.core.checkpoints import load_checkpoint
from pmgi_gui.core.fusion import PMGI_METHOD
from pmgi_gui.core.tasks import Lambdas, get_task

from ._util import fuse, gray_pair, set_methods, write_pair

LEFT = Qt.MouseButton.LeftButton
RUN_TIMEOUT_MS = 60_000


@pytest.fixture
def w(make_window, install_checkpoint, no_shipped_weights, tmp_path):
    """A window on a small synthetic ir-vis pair with a random checkpoint, PMGI only."""
    install_checkpoint("ir-vis", "random")
    win = make_window()
    a, b = gray_pair(48, 64)
    assert win.load_pair_folder(write_pair(tmp_path / "pair", "ir-vis", a, b))
    win.select_checkpoint("random")
    set_methods(win, pmgi=True, baselines=False)
    return win


def _open(qtbot, w):
    assert w.fine_tune_button.isEnabled() and w.act_fine_tune.isEnabled()
    qtbot.mouseClick(w.fine_tune_button, LEFT)
    d = w.fine_tune_dialog
    assert d is not None and d.isVisible()
    return d


def _small(d, steps: int, name: str | None = None, lr: float | None = None) -> None:
    """What a user types to keep a run short (the dialog exposes batch and patch)."""
    d.steps_spin.setValue(steps)
    d.batch_spin.setValue(2)
    d.patch_spin.setValue(16)
    if lr is not None:
        d.lr_spin.setValue(lr)
    if name is not None:
        d.name_edit.setText(name)


def _start_long_run(qtbot, d) -> None:
    """Start a run far too long to finish and return once it is stepping."""
    _small(d, 100_000, "never-saved")
    with qtbot.waitSignal(d.progress_bar.valueChanged, timeout=RUN_TIMEOUT_MS,
                          check_params_cb=lambda v: v >= 2):
        qtbot.mouseClick(d.run_button, LEFT)
    assert d.is_running() and d.cancel_button.isEnabled() and not d.run_button.isEnabled()


def test_preset_run_selects_and_fuses_the_new_checkpoint(qtbot, w):
    from pmgi_gui.paths import user_checkpoints_dir

    t = get_task("ir-vis")
    base_pixels = fuse(qtbot, w).outcomes[0].result.pixels
    base = load_checkpoint(user_checkpoints_dir() / "ir-vis" / "random")
    d = _open(qtbot, w)

    # The base and its four weights, in the task's words.
    assert "random" in d.base_label.text() and t.lambdas.describe(t) in d.base_label.text()
    form = d.weights_box.layout()
    labels = [form.labelForField(d.lambda_spins[k]).text() for k in ("a_int", "a_grad", "b_int", "b_grad")]
    assert labels == ["Infrared intensity", "Infrared texture (gradient)", "Visible intensity",
                      "Visible texture (gradient)"]
    assert d.lambdas() == t.lambdas
    assert d.steps_spin.value() == 60 and d.name_edit.text() == "random-tuned"
    # The presets, as buttons named after the roles.
    assert d.preset_buttons["more-a-intensity"].text() == "More infrared intensity"
    qtbot.mouseClick(d.preset_buttons["smoother"], LEFT)
    assert d.lambdas() == Lambdas(1, 2, 0.3, 2.5)
    qtbot.mouseClick(d.reset_button, LEFT)
    qtbot.mouseClick(d.preset_buttons["more-texture"], LEFT)
    assert d.lambdas() == Lambdas(1, 8, 0.3, 10)
    qtbot.mouseClick(d.preset_buttons["more-a-intensity"], LEFT)
    wanted = Lambdas(2, 8, 0.3, 10)
    assert d.lambdas() == wanted

    _small(d, 3, "more-ir", lr=0.01)
    steps = []
    d.progress_bar.valueChanged.connect(steps.append)
    # Saving selects the new checkpoint and fuses again: wait for that fusion.
    with qtbot.waitSignal(d.checkpoint_saved, timeout=RUN_TIMEOUT_MS) as saved, \
            qtbot.waitSignal(w.runner.finished, timeout=RUN_TIMEOUT_MS) as fused:
        qtbot.mouseClick(d.run_button, LEFT)

    assert steps[-1] == 3 and "Step 3 of 3, loss" in d.progress_bar.format()
    ckpt = saved.args[0]
    assert ckpt.name == "more-ir" and ckpt.path == user_checkpoints_dir() / "ir-vis" / "more-ir"
    assert load_checkpoint(ckpt.path).lambdas == wanted
    assert ckpt.extra["fine_tune"]["base"]["checkpoint"] == "random"
    assert not d.isVisible()
    qtbot.waitUntil(lambda: not d.is_running(), timeout=5000)
    # In the selector, selected, with its weights in words.
    assert w.checkpoints_listed() == ["more-ir", "random"]
    assert w.checkpoint_combo.currentText().endswith("(more-ir)")
    assert w.lambdas_label.text() == f"Loss weights (λ): {wanted.describe(t)}"
    # Fused with it, and the result differs from the base's.
    assert not fused.args[0].cancelled
    result = w.results[PMGI_METHOD].result
    assert result.checkpoint == "more-ir"
    assert result.pixels.shape == base_pixels.shape
    assert not np.array_equal(result.pixels, base_pixels)
    # The base is untouched.
    assert load_checkpoint(base.path).sha256() == base.sha256()
    assert "fine-tuned random -> more-ir" in w.log_view.toPlainText()


def test_names_are_checked_before_the_run(qtbot, w, no_shipped_weights):
    from pmgi_gui.paths import user_checkpoints_dir
    from tests.helpers import random_checkpoint

    random_checkpoint(no_shipped_weights / "ir-vis" / "paper", "ir-vis")  # "shipped"
    d = _open(qtbot, w)
    for bad in ("paper", "bad name!", ""):
        d.name_edit.setText(bad)
        assert not d.start() and not d.is_running()
        assert d.messages[-1][1] == "Choose another name"
    assert "shipped" in d.messages[0][2]
    # An existing checkpoint of the user's is replaced only when confirmed.
    asked = []
    d.ask_yes_no = lambda title, text: asked.append(text) or False
    d.name_edit.setText("random")
    assert not d.start() and not d.is_running()
    assert asked and "'random'" in asked[0]
    assert not (user_checkpoints_dir() / "ir-vis" / "paper").exists()
    d.close()


def test_cancel_mid_run_saves_nothing(qtbot, w):
    from pmgi_gui.paths import user_checkpoints_dir

    d = _open(qtbot, w)
    _start_long_run(qtbot, d)
    # Waited for on the GUI thread: a worker's own signal would reach the blocker on the
    # worker thread, racing pytest-qt's checks (a flaky "assert not signal_triggered").
    with qtbot.waitSignal(d.logged, timeout=RUN_TIMEOUT_MS,
                          check_params_cb=lambda text, _level: "cancelled" in text) as blocker:
        qtbot.mouseClick(d.cancel_button, LEFT)
    assert "nothing saved" in blocker.args[0]
    qtbot.waitUntil(lambda: not d.is_running(), timeout=5000)
    assert "Cancelled" in d.status_label.text() and "nothing was saved" in d.status_label.text()
    assert d.isVisible() and d.run_button.isEnabled() and not d.cancel_button.isEnabled()
    assert not (user_checkpoints_dir() / "ir-vis" / "never-saved").exists()
    assert w.checkpoints_listed() == ["random"]


def test_closing_the_dialog_mid_run_stops_it(qtbot, w):
    from pmgi_gui.paths import user_checkpoints_dir

    d = _open(qtbot, w)
    _start_long_run(qtbot, d)
    d.close()
    assert not d.isVisible() and not d.is_running() and d.worker is None
    qtbot.wait(50)  # the cancelled outcome arrives and changes nothing
    assert not (user_checkpoints_dir() / "ir-vis" / "never-saved").exists()
    assert w.checkpoints_listed() == ["random"]
    # The window can open a new one at once.
    assert _open(qtbot, w) is not d


def test_closing_the_window_mid_run_stops_it(qtbot, w):
    d = _open(qtbot, w)
    _start_long_run(qtbot, d)
    w.close()
    assert not d.is_running() and d.worker is None


def test_offered_only_with_a_checkpoint_and_a_valid_pair(qtbot, make_window, no_shipped_weights,
                                                         install_checkpoint, tmp_path):
    w = make_window()
    assert all(w.sources.values()) and not w.checkpoints_listed()
    assert not w.fine_tune_button.isEnabled() and not w.act_fine_tune.isEnabled()
    install_checkpoint("ir-vis", "random")
    w.set_task("multi-focus")
    w.set_task("ir-vis")  # lists the new checkpoint
    assert w.fine_tune_button.isEnabled()
    a, _ = gray_pair(40, 40)
    from pmgi_gui.core.imageio import write_image

    write_image(tmp_path / "a.png", a)
    w.load_source("a", tmp_path / "a.png")  # B is not loaded any more
    assert not w.fine_tune_button.isEnabled() and not w.act_fine_tune.isEnabled()
    assert w.open_fine_tune_dialog() is None
    assert w.messages[-1][1] == "Nothing to fine-tune"


def test_a_failure_reaches_the_user(qtbot, w):
    ckpt = load_checkpoint(w.checkpoint_combo.currentData())
    d = _open(qtbot, w)
    (ckpt.path / "model.safetensors").write_bytes(b"tampered")
    _small(d, 3, "from-damaged")
    qtbot.mouseClick(d.run_button, LEFT)
    qtbot.waitUntil(lambda: bool(d.messages) and not d.is_running(), timeout=RUN_TIMEOUT_MS)
    level, title, text = d.messages[-1]
    assert level == "error" and title == "Fine-tuning failed" and "sha256" in text
    assert "sha256" in w.log_view.toPlainText()
    assert d.isVisible() and d.run_button.isEnabled()
