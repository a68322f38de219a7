"""The texture slider, driven as a person would: a checkpoint with gradient-scaled
variants (a family) gets a slider over their gradient scales; released between two
members, the window fuses with their weights blended."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import Qt

from pmgi_gui.app.gradient_scale import CHOOSE_DELAY_MS, STEPS
from pmgi_gui.core.family import BlendedCheckpoint, family_for, scaled_lambdas
from pmgi_gui.core.fusion import PMGI_METHOD
from pmgi_gui.core.fusion import fuse as core_fuse
from pmgi_gui.core.tasks import get_task
from tests.helpers import gradient_variant, random_checkpoint

from ._util import FUSE_TIMEOUT_MS, fuse, gray_pair, set_methods, write_pair

T = get_task("ir-vis")


@pytest.fixture
def family(tmp_path, monkeypatch):
    """Shipped weights: paper with variants at gradient x0.5 and x2, and a checkpoint
    without variants."""
    from pmgi_gui import paths

    root = tmp_path / "weights"
    base = random_checkpoint(root / "ir-vis" / "paper", seed=1)
    lo = gradient_variant(root / "ir-vis" / "grad-x0.5", base, 0.5, seed=2)
    hi = gradient_variant(root / "ir-vis" / "grad-x2", base, 2.0, seed=3)
    other = random_checkpoint(root / "ir-vis" / "unrelated", seed=4)
    monkeypatch.setattr(paths, "weights_dir", lambda: root)
    return base, lo, hi, other


@pytest.fixture
def w(make_window, family, tmp_path):
    win = make_window()
    a, b = gray_pair(48, 64)
    assert win.load_pair_folder(write_pair(tmp_path / "pair", "ir-vis", a, b))
    win.select_checkpoint("paper")
    set_methods(win, pmgi=True, baselines=False)
    return win


def _lambdas_text(lambdas) -> str:
    return f"Loss weights (λ): {lambdas.describe(T)}"


def _release_and_wait(qtbot, w):
    with qtbot.waitSignal(w.runner.finished, timeout=FUSE_TIMEOUT_MS) as blocker:
        w.gradient_control.slider.setSliderDown(False)
    return blocker.args[0]


def test_shown_for_a_family_only(w, family):
    base, lo, hi, other = family
    ctl = w.gradient_control
    assert ctl.isVisibleTo(w) and ctl.isEnabled()
    assert ctl.less_label.text() == "◀ More intensity" and ctl.more_label.text() == "More texture ▶"
    assert "infrared and visible intensities" in ctl.less_label.toolTip()
    # A log scale from x0.5 to x2: the members at both ends and in the middle.
    assert ctl.slider.ticks == [(0, "×0.5"), (STEPS // 2, "×1"), (STEPS, "×2")]
    assert ctl.slider.value() == STEPS // 2 and ctl.scale() == 1.0
    assert "paper, the family's base" in ctl.text.text()
    assert w.lambdas_label.text() == _lambdas_text(base.lambdas)

    w.select_checkpoint("unrelated")
    assert not ctl.isVisibleTo(w)
    assert w.current_checkpoint().name == "unrelated"
    # Picking a variant puts the handle on its own scale.
    w.select_checkpoint("grad-x2")
    assert ctl.isVisibleTo(w) and ctl.scale() == 2.0 and ctl.slider.value() == STEPS
    assert w.lambdas_label.text() == _lambdas_text(hi.lambdas)
    assert w.current_checkpoint().sha256() == hi.sha256()


def test_released_between_members_fuses_the_blend(qtbot, w, family, tmp_path):
    base, _, hi, _ = family
    ctl, slider = w.gradient_control, w.gradient_control.slider
    paper = fuse(qtbot, w).outcomes[0].result
    assert paper.checkpoint == "paper"
    paper_shown = w.panel_fused.shown().copy()

    # Dragging the handle fuses nothing until it is released.
    qtbot.waitUntil(lambda: not w.runner.is_running())
    job = w.runner.current_job_id
    slider.setSliderDown(True)
    for v in (600, 700, 3 * STEPS // 4):
        slider.setValue(v)
        assert not w.runner.is_running()
    qtbot.wait(CHOOSE_DELAY_MS + 150)
    assert not w.runner.is_running() and w.runner.current_job_id == job
    assert ctl.scale() == pytest.approx(math.sqrt(2))
    # The loss weights in words and numbers, and what is blended.
    assert w.lambdas_label.text() == _lambdas_text(scaled_lambdas(base.lambdas, ctl.scale()))
    assert "blended from paper (×1, 50 %) and grad-x2 (×2, 50 %)" in ctl.text.text()

    summary = _release_and_wait(qtbot, w)
    assert [o.method for o in summary.outcomes] == [PMGI_METHOD]
    blend = family_for(base).at(ctl.scale())
    assert isinstance(blend, BlendedCheckpoint) and blend.name == "paper@g1.41"
    r = w.results[PMGI_METHOD].result
    assert r.checkpoint == blend.name and r.checkpoint_sha256 == blend.sha256()
    assert r.checkpoint_sha256 not in (base.sha256(), hi.sha256())
    assert "paper@g1.41" in w.panel_fused.title.text()
    # The window fused with the blended weights: the core's own fusion with the blend.
    a, b = w.sources["a"].pixels, w.sources["b"].pixels
    assert np.array_equal(r.pixels, core_fuse("ir-vis", a, b, checkpoint=blend, device="cpu").pixels)
    blend_shown = w.panel_fused.shown().copy()

    # Keys move it too, and choose once they pause: the end is grad-x2 itself.
    with qtbot.waitSignal(w.runner.finished, timeout=FUSE_TIMEOUT_MS):
        qtbot.keyClick(slider, Qt.Key.Key_End)
    assert w.results[PMGI_METHOD].result.checkpoint == "grad-x2"
    assert w.lambdas_label.text() == _lambdas_text(hi.lambdas)
    hi_shown = w.panel_fused.shown().copy()
    assert not np.array_equal(blend_shown, paper_shown)
    assert not np.array_equal(blend_shown, hi_shown)

    # Near a member the dragged handle sits on it: the member, not a blend.
    slider.setSliderDown(True)
    slider.setValue(STEPS // 2 + 12)
    assert slider.value() == STEPS // 2 and ctl.scale() == 1.0
    _release_and_wait(qtbot, w)
    assert w.results[PMGI_METHOD].result.checkpoint_sha256 == base.sha256()
    assert np.array_equal(w.panel_fused.shown(), paper_shown)


def test_a_blend_can_be_fine_tuned_under_a_valid_name(w):
    from pmgi_gui.app.fine_tune import default_name, name_problem

    slider = w.gradient_control.slider
    slider.setValue(3 * STEPS // 4)  # by keys: chosen after a pause, and fused
    w.gradient_control.choose_timer.stop()  # no pause here: the dialog is what is tested
    d = w.open_fine_tune_dialog()
    assert d.checkpoint.name == "paper@g1.41"
    assert d.name_edit.text() == "paper-g1.41-tuned" == default_name("ir-vis", "paper@g1.41")
    assert name_problem("ir-vis", d.name_edit.text()) is None
    d.close()


def test_other_results_stay_when_only_the_texture_changes(qtbot, w):
    set_methods(w, baselines=True)
    first = fuse(qtbot, w)
    before = {o.method: o for o in first.outcomes}
    slider = w.gradient_control.slider
    slider.setSliderDown(True)
    slider.setValue(STEPS // 4)
    summary = _release_and_wait(qtbot, w)
    assert [o.method for o in summary.outcomes] == [PMGI_METHOD]
    assert list(w.results) == list(before)  # every method still listed, in order
    for method, outcome in before.items():
        if method != PMGI_METHOD:
            assert w.results[method] is outcome
    assert w.results[PMGI_METHOD].result.checkpoint == "paper@g0.707"
    combo = w.show_combo
    assert [combo.itemData(i) for i in range(combo.count())] == list(before)
    assert w.metrics_panel.table.rowCount() == len(before)


def test_scale_remembered_per_task(qtbot, make_window, w):
    slider = w.gradient_control.slider
    slider.setSliderDown(True)
    slider.setValue(3 * STEPS // 4)
    _release_and_wait(qtbot, w)
    w.close()
    again = make_window()
    assert again.checkpoint_combo.currentText().endswith("(paper)")
    assert again.gradient_control.isVisibleTo(again)
    assert again.gradient_control.scale() == pytest.approx(math.sqrt(2))
    assert again.current_checkpoint().name == "paper@g1.41"
