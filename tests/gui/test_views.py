"""Views: linked zoom and pan, comparison modes, pixel inspector, medical display."""

from __future__ import annotations

import numpy as np

from pmgi_gui.core import comparison
from pmgi_gui.core.colour import apply_colormap

from ._util import fuse, gray_pair, set_methods, write_pair


def _fused_window(qtbot, window, tmp_path):
    """ir-vis on a small synthetic pair, the baselines fused."""
    a, b = gray_pair(64, 80)
    window.load_pair_folder(write_pair(tmp_path / "pair", "ir-vis", a, b))
    set_methods(window, pmgi=False, baselines=True)
    fuse(qtbot, window)
    return a, b


def test_views_are_linked(qtbot, window):
    w = window
    w.panel_fused.viewbox.setRange(xRange=(10, 30), yRange=(5, 25), padding=0)
    (fx0, fx1), (fy0, fy1) = w.panel_fused.viewbox.viewRange()
    # The aspect lock may widen one axis; the views still show the same region.
    assert fx0 <= 10 and fx1 >= 30 and fy0 <= 5 and fy1 >= 25
    for p in (w.panel_a, w.panel_b):
        (x0, x1), (y0, y1) = p.viewbox.viewRange()
        assert np.allclose([x0, x1, (y0 + y1) / 2], [fx0, fx1, (fy0 + fy1) / 2], atol=1)


def test_comparison_modes(qtbot, window, tmp_path):
    w = window
    a, b = _fused_window(qtbot, window, tmp_path)
    fused = w.results["average"].result.pixels
    assert np.array_equal(w.panel_fused.shown(), fused)
    w.reference_combo.setCurrentIndex(w.reference_combo.findData("a"))

    w.mode_actions["swipe"].trigger()
    assert w.compare_mode() == "swipe" and w.panel_fused.divider.isVisible()
    w.panel_fused.divider.setValue(30)  # as dragging the divider does
    qtbot.waitUntil(lambda: np.array_equal(w.panel_fused.shown(), comparison.swipe(fused, a, 30)),
                    timeout=2000)
    assert w.panel_fused.shown()[:, :30].tolist() == fused[:, :30].tolist()
    assert w.panel_fused.shown()[:, 30:].tolist() == a[:, 30:].tolist()

    w.mode_actions["difference"].trigger()
    assert not w.panel_fused.divider.isVisible()
    diff = np.abs(fused.astype(int) - a.astype(int)).astype(np.uint8)
    assert np.array_equal(w.panel_fused.shown(), diff)
    assert "|Average − infrared|" in w.panel_fused.title.text()

    # Against another method.
    w.reference_combo.setCurrentIndex(w.reference_combo.findData("laplacian"))
    other = w.results["laplacian"].result.pixels
    assert np.array_equal(w.panel_fused.shown(), comparison.absolute_difference(fused, other))

    w.mode_actions["flicker"].trigger()
    assert w.flicker_timer.isActive()
    assert np.array_equal(w.panel_fused.shown(), fused)
    w.flicker_toggle()
    assert np.array_equal(w.panel_fused.shown(), other)
    w.flicker_toggle()
    assert np.array_equal(w.panel_fused.shown(), fused)

    w.mode_actions["fused"].trigger()
    assert not w.flicker_timer.isActive()
    assert np.array_equal(w.panel_fused.shown(), fused)


def test_shortcuts(window):
    w = window
    shortcuts = {name: act.shortcut().toString() for name, act in
                 (("open", w.act_open_a), ("fuse", w.act_fuse), ("save", w.act_save),
                  ("export", w.act_export))}
    assert shortcuts == {"open": "Ctrl+O", "fuse": "Ctrl+Return", "save": "Ctrl+S",
                         "export": "Ctrl+E"}
    assert [a.shortcut().toString() for a in w.mode_actions.values()] == [
        "Ctrl+1", "Ctrl+2", "Ctrl+3", "Ctrl+4"]


def test_pixel_inspector(qtbot, window, tmp_path):
    w = window
    a, b = _fused_window(qtbot, window, tmp_path)
    fused = w.results["average"].result.pixels
    w.panel_b.hovered.emit(12.4, 7.9)  # the cursor over pixel (12, 7)
    text = w.inspector_label.text()
    assert text == (f"x 12, y 7   |   infrared {a[7, 12]}   |   visible {b[7, 12]}   |   "
                    f"Average {fused[7, 12]}")
    assert "–" in w.inspect(500, 500)


def test_pixel_inspector_maps_ms_onto_the_pan_grid(qtbot, window, tmp_path):
    w = window
    w.set_task("pan-sharpening")
    a, b = w.sources["a"].pixels, w.sources["b"].pixels
    text = w.inspect(9, 5)
    assert f"multispectral ({', '.join(str(int(v)) for v in a[1, 2])})" in text
    assert f"panchromatic {b[5, 9]}" in text


def test_medical_blend_colour_map_and_note(qtbot, window, tmp_path):
    w = window
    w.set_task("medical")
    assert w.panel_blend.isVisibleTo(w) and w.medical_note.isVisibleTo(w)
    pet, mri = gray_pair(64, 64)
    write_pair(tmp_path / "pair", "medical", pet, mri)
    assert w.load_pair_folder(tmp_path / "pair")
    # A gray PET is shown in the chosen PET colour map.
    w.colormap_combo.setCurrentText("inferno")
    assert np.array_equal(w.panel_a.shown(), apply_colormap(pet, "inferno"))
    w.colormap_combo.setCurrentText("hot")
    assert np.array_equal(w.panel_a.shown(), apply_colormap(pet, "hot"))
    assert w.pipeline_options().pet_colormap == "hot"
    w.opacity_slider.setValue(30)
    expected = comparison.opacity_blend(apply_colormap(pet, "hot"), mri, 0.3)
    assert np.array_equal(w.panel_blend.shown(), expected)
    assert "30% opacity" in w.panel_blend.title.text()
    # The learned fusion sits beside the blend.
    set_methods(w, baselines=True)
    fuse(qtbot, w)
    assert w.panel_fused.shown().shape == (64, 64, 3)
    w.set_task("ir-vis")
    assert not w.panel_blend.isVisibleTo(w) and not w.medical_note.isVisibleTo(w)


def test_demo_sources_are_valid_for_every_task():
    from pmgi_gui.app.sources import demo_sources
    from pmgi_gui.core.tasks import TASK_NAMES, check_pair

    for task in TASK_NAMES:
        a, b = demo_sources(task)
        check_pair(task, a.pixels, b.pixels)



def test_dragging_the_swipe_divider_composes_no_picture(qtbot, window, tmp_path):
    """The reference is drawn right of the divider over the result: moving it only
    redraws, whatever the image's size."""
    w = window
    a, _ = _fused_window(qtbot, window, tmp_path)
    fused = w.results["average"].result.pixels
    w.reference_combo.setCurrentIndex(w.reference_combo.findData("a"))
    w.mode_actions["swipe"].trigger()
    panel = w.panel_fused
    base = panel.image.image
    for x in (10, 45, 70):
        panel.divider.setValue(x)
        assert panel.image.image is base and panel.overlay.left == x
        assert np.array_equal(panel.shown(), comparison.swipe(fused, a, x))
    w.mode_actions["fused"].trigger()
    assert not panel.overlay.isVisible() and np.array_equal(panel.shown(), fused)


def test_large_differences_are_made_off_the_gui_thread(qtbot, window, tmp_path):
    w = window
    a, _ = _fused_window(qtbot, window, tmp_path)
    fused = w.results["average"].result.pixels
    w.pictures.sync_pixels = 0  # as if the pair were large
    w.reference_combo.setCurrentIndex(w.reference_combo.findData("a"))
    w.mode_actions["difference"].trigger()
    # Meanwhile the result itself, saying so.
    assert "computing the difference" in w.panel_fused.title.text()
    assert np.array_equal(w.panel_fused.shown(), fused)
    diff = comparison.absolute_difference(fused, a)
    qtbot.waitUntil(lambda: np.array_equal(w.panel_fused.shown(), diff), timeout=10_000)
    assert "|Average − infrared|" in w.panel_fused.title.text()
    qtbot.waitUntil(lambda: not w.pictures.is_busy(), timeout=10_000)
    # Made once: showing it again needs no thread.
    w.mode_actions["fused"].trigger()
    w.mode_actions["difference"].trigger()
    assert np.array_equal(w.panel_fused.shown(), diff) and not w.pictures.is_busy()


def test_ms_on_the_pan_grid_is_prepared_off_the_gui_thread(qtbot, window):
    w = window
    w.set_task("pan-sharpening")
    set_methods(w, pmgi=False, baselines=True)
    fuse(qtbot, w)
    w.pictures.sync_pixels = 0
    w.reference_combo.setCurrentIndex(w.reference_combo.findData("a"))
    w.mode_actions["flicker"].trigger()
    w.flicker_timer.stop()  # stepped by hand below
    w.flicker_toggle()
    assert "preparing the multispectral image" in w.panel_fused.title.text()
    a, b = w.sources["a"].pixels, w.sources["b"].pixels
    peak = comparison.display_peak(a, b)
    expected = comparison.task_display("pan-sharpening", comparison.on_fused_grid("pan-sharpening", a), peak)
    qtbot.waitUntil(lambda: np.array_equal(w.panel_fused.shown(), expected), timeout=20_000)
    assert "Flicker: multispectral" in w.panel_fused.title.text()
    qtbot.waitUntil(lambda: not w.pictures.is_busy(), timeout=10_000)
