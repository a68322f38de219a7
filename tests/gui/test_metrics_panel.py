"""The metrics panel: grouped bars and a table, live as each method finishes."""

from __future__ import annotations

import numpy as np
import pytest

from PySide6.QtGui import QColor

from pmgi_gui.app.metrics_panel import MetricSpec, MetricsPanel
from pmgi_gui.core.fusion import methods_for
from pmgi_gui.core.tasks import TASK_NAMES

from ._util import fuse, gray_pair, set_methods, write_pair

SPECS = [MetricSpec("en", "EN", "entropy of the fused image", "bits, log2, 256 bins", True),
         MetricSpec("sd", "SD", "standard deviation: contrast", "grey levels", True)]


def test_panel_groups_bars_and_fills_the_table(qtbot):
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.set_metrics(SPECS)
    assert panel.table.columnCount() == 4
    assert "entropy of the fused image" in panel.table.horizontalHeaderItem(2).toolTip()
    assert "bits, log2" in panel.table.horizontalHeaderItem(2).toolTip()
    assert "Higher is better" in panel.table.horizontalHeaderItem(3).toolTip()
    panel.add_result("pmgi", "PMGI", 0.5, {"en": 7.0, "sd": 40.0})
    assert panel.table.rowCount() == 1 and panel.bar_heights("pmgi") == [1.0, 1.0]
    panel.add_result("average", "Average", 0.01, {"en": 3.5, "sd": 50.0})
    assert panel.table.rowCount() == 2
    assert [panel.table.item(1, c).text() for c in range(4)] == ["Average", "0.010", "3.5", "50"]
    assert panel.table.horizontalHeaderItem(2).text() == "en"
    assert panel.table.item(0, 0).data(1) == QColor(*panel.colour("pmgi"))  # DecorationRole
    assert panel.bar_heights("pmgi") == [1.0, 0.8]
    assert panel.bar_heights("average") == [0.5, 1.0]
    # Two groups of two bars, side by side around each metric's tick.
    xs = np.concatenate([panel.bars[m].opts["x"] for m in ("pmgi", "average")])
    assert sorted(np.round(xs, 2)) == [-0.2, 0.2, 0.8, 1.2]
    panel.set_hidden({"average"})
    assert panel.table.rowCount() == 1 and "average" not in panel.bars
    assert panel.bar_heights("pmgi") == [1.0, 1.0]


def test_panel_without_metrics_lists_run_times(qtbot):
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.set_metrics([])
    panel.add_result("average", "Average", 0.25, {})
    assert panel.table.columnCount() == 2 and panel.table.item(0, 1).text() == "0.250"
    assert panel.bars == {} and "only run times" in panel.note.text()


def _check_window_metrics(qtbot, w, tmp_path, keys):
    a, b = gray_pair(48, 64)
    w.load_pair_folder(write_pair(tmp_path / "pair", "ir-vis", a, b))
    set_methods(w, pmgi=False, baselines=True)
    seen = []
    w.runner.method_finished.connect(lambda o: seen.append(w.metrics_panel.table.rowCount()))
    summary = fuse(qtbot, w)
    n = len(summary.outcomes)
    assert seen == list(range(1, n + 1))  # a row appears as each method finishes
    table = w.metrics_panel.table
    assert table.rowCount() == n and table.columnCount() == 2 + len(keys)
    for r in range(n):
        for c in range(2, 2 + len(keys)):
            assert table.item(r, c).text() != ""
    for o in summary.outcomes:
        assert set(o.metrics) >= set(keys)
        assert len(w.metrics_panel.bar_heights(o.method)) == len(keys)
    # A baseline switched off leaves the plot and the table.
    w.baseline_checks["laplacian"].setChecked(False)
    assert "laplacian" not in w.metrics_panel.bars and table.rowCount() == n - 1


def test_window_metrics_with_the_real_module(qtbot, window, tmp_path):
    metrics = pytest.importorskip("pmgi_gui.core.metrics",
                                  reason="pmgi_gui.core.metrics is not merged yet")
    keys = tuple(metrics.TASK_METRICS["ir-vis"])
    _check_window_metrics(qtbot, window, tmp_path, keys)
    header = window.metrics_panel.table.horizontalHeaderItem(2)
    m = metrics.METRICS[keys[0]]
    assert header.text() == keys[0] and m.name in header.toolTip()
    assert m.meaning in header.toolTip() and m.convention in header.toolTip()


def test_pan_sharpening_metrics_need_no_reference(qtbot, window, tmp_path):
    pytest.importorskip("pmgi_gui.core.metrics", reason="pmgi_gui.core.metrics is not merged yet")
    from pmgi_gui.app.worker import window_metric_keys

    assert window_metric_keys("pan-sharpening") == ("QNR", "D_lambda", "D_s")
    window.set_task("pan-sharpening")
    assert "Wald protocol" in window.metrics_panel.note.text()


def test_baselines_listed_per_task(window):
    for task in TASK_NAMES:
        window.set_task(task)
        assert list(window.baseline_checks) == [k for k, _ in methods_for(task)[1:]]
