"""Saving the fused image, exporting the report, remembering settings."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from pmgi_gui.core.imageio import read_image

from ._util import fuse, gray_pair, set_methods, tiff_writing_works, write_pair


def _fused(qtbot, w, tmp_path, task="ir-vis", a=None, b=None, ext=".png"):
    if a is None:
        a, b = gray_pair(48, 64)
    folder = write_pair(tmp_path / "pair", task, a, b, ext=ext)
    w.set_task(task)
    assert w.load_pair_folder(folder), w.messages
    set_methods(w, pmgi=False, baselines=True)
    fuse(qtbot, w)
    return folder


def test_save_fused_image_never_over_a_source(qtbot, window, dialogs, tmp_path):
    w = window
    folder = _fused(qtbot, w, tmp_path)
    pixels = w.results[w.shown_method()].result.pixels
    out = tmp_path / "out.png"
    dialogs.save_file.append(out)
    w.act_save.trigger()
    assert np.array_equal(read_image(out), pixels)

    # Replacing asks first; "no" keeps the file.
    w.show_method("laplacian")
    dialogs.save_file.append(out)
    dialogs.yes_no.append(False)
    w.act_save.trigger()
    assert "out.png exists" in dialogs.asked[-1]
    assert np.array_equal(read_image(out), pixels)
    dialogs.save_file.append(out)
    dialogs.yes_no.append(True)
    w.act_save.trigger()
    assert np.array_equal(read_image(out), w.results["laplacian"].result.pixels)

    # A source is never written over, whatever the answer would be.
    source = folder / "ir.png"
    before = source.read_bytes()
    dialogs.save_file.append(source)
    w.act_save.trigger()
    assert w.messages[-1][1] == "Not saved" and "source" in w.messages[-1][2]
    assert source.read_bytes() == before


def test_save_keeps_bit_depth_and_bands(qtbot, window, dialogs, tmp_path):
    w = window
    ms = (np.stack([gray_pair(24, 24)[0]] * 4, axis=-1).astype(np.uint16) * 8)
    pan = gray_pair(96, 96)[1].astype(np.uint16) * 8
    _fused(qtbot, w, tmp_path, "pan-sharpening", ms, pan, ext=".tif")
    pixels = w.results["brovey"].result.pixels
    assert pixels.dtype == np.uint16 and pixels.shape == (96, 96, 4)
    w.show_method("brovey")
    dialogs.save_file.append(tmp_path / "out.png")
    w.act_save.trigger()
    assert "save as TIFF" in w.messages[-1][2] and not (tmp_path / "out.png").exists()
    if not tiff_writing_works(tmp_path):
        pytest.skip("core.imageio cannot write TIFF yet (fixed on the imageio branch)")
    dialogs.save_file.append(tmp_path / "out.tif")
    w.act_save.trigger()
    back = read_image(tmp_path / "out.tif")
    assert back.dtype == np.uint16 and np.array_equal(back, pixels)


def test_save_16_bit_png(qtbot, window, dialogs, tmp_path):
    w = window
    a, b = (x.astype(np.uint16) * 200 for x in gray_pair(40, 40))
    _fused(qtbot, w, tmp_path, "ir-vis", a, b)
    dialogs.save_file.append(tmp_path / "fused")  # no suffix: PNG
    w.act_save.trigger()
    back = read_image(tmp_path / "fused.png")
    assert np.array_equal(back, w.results[w.shown_method()].result.pixels)


def test_export_report(qtbot, window, dialogs, tmp_path):
    w = window
    _fused(qtbot, w, tmp_path)
    out = tmp_path / "report"
    out.mkdir()
    dialogs.directory.append(out)
    w.act_export.trigger()
    rows = list(csv.DictReader((out / "ir-vis_pair_metrics.csv").open()))
    assert [r["method"] for r in rows] == list(w.results)
    assert all(float(r["seconds"]) >= 0 for r in rows)
    doc = json.loads((out / "ir-vis_pair_metrics.json").read_text())
    assert doc["task"] == "ir-vis" and doc["sources"]["a"].endswith("ir.png")
    assert [m["method"] for m in doc["methods"]] == list(w.results)
    picture = read_image(out / "ir-vis_pair_views.png")
    assert picture.shape[0] > 100 and picture.shape[1] > 300 and picture.std() > 0
    # Exporting again asks before replacing.
    dialogs.directory.append(out)
    dialogs.yes_no.append(False)
    w.act_export.trigger()
    assert "Replace" in dialogs.asked[-1]


def test_settings_are_remembered(qtbot, make_window, tmp_path, _isolated_user_dirs):
    _, config = _isolated_user_dirs
    w = make_window()
    w.set_task("multi-focus")
    w.baseline_checks["gff"].setChecked(False)
    w.colormap_combo.setCurrentText("jet")
    a, b = gray_pair(32, 32)
    w.load_pair_folder(write_pair(tmp_path / "pairs" / "one", "multi-focus", a, b))
    w.resize(1250, 760)
    size = (w.width(), w.height())  # the minimum size may have widened it
    w.close()
    saved = json.loads((config / "settings.json").read_text())
    assert saved["schema_version"] == 1 and saved["task"] == "multi-focus"
    assert saved["device"] == "cpu" and saved["baselines_off"] == ["gff"]
    assert saved["source_dir"] == str(tmp_path / "pairs")
    assert (config / "window.ini").is_file()

    w2 = make_window()
    assert w2.task == "multi-focus"
    assert w2.device_combo.currentData() == "cpu"
    assert not w2.baseline_checks["gff"].isChecked()
    assert w2.colormap_combo.currentText() == "jet"
    # Offscreen, Qt fits a restored width into its 800-pixel virtual screen; the height shows
    # that the geometry came back.
    assert w2.height() == size[1]
    from pmgi_gui.app.settings import geometry_store

    assert not geometry_store().value("geometry").isEmpty()
