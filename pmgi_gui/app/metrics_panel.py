"""The side panel: the task's metrics for PMGI and each baseline as grouped bars,
and a table of the values and run times, filled as each method finishes (its run
time first, its metrics when the job has scored it).

Metrics have very different ranges (entropy ~7 bits, SD ~50 grey levels), so each
bar shows a value relative to the largest magnitude of that metric among the
methods shown; the table holds the real values.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QHeaderView, QLabel, QSplitter, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

__all__ = ["MetricSpec", "MetricsPanel", "metric_specs"]

# Distinguishable bar colours, PMGI first.
_COLOURS = [(230, 85, 13), (49, 130, 189), (116, 196, 118), (158, 154, 200), (253, 174, 107),
            (150, 150, 150), (231, 41, 138), (102, 194, 165)]


@dataclass(frozen=True)
class MetricSpec:
    key: str
    name: str
    meaning: str = ""
    convention: str = ""
    higher_is_better: bool | None = True

    def tooltip(self) -> str:
        better = {True: "Higher is better.", False: "Lower is better.", None: ""}[self.higher_is_better]
        parts = [f"<b>{self.key}: {self.name}</b>", self.meaning, self.convention, better]
        return "<br>".join(p for p in parts if p)


def metric_specs(metrics, keys) -> list[MetricSpec]:
    """The specs of the metrics ``keys`` from ``pmgi_gui.core.metrics`` (or none)."""
    if metrics is None:
        return []
    specs = []
    for key in keys:
        m = metrics.METRICS[key]
        specs.append(MetricSpec(key, str(getattr(m, "name", key)), str(getattr(m, "meaning", "")),
                                str(getattr(m, "convention", "")),
                                getattr(m, "higher_is_better", None)))
    return specs


class MetricsPanel(QWidget):
    TIME_COLUMN = 1

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.specs: list[MetricSpec] = []
        self.rows: dict[str, dict] = {}  # method -> {"name", "seconds", "values"}
        self.hidden: set[str] = set()
        self.order: list[str] = []  # methods listed in this order, whatever order they come in
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(180)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("left", "relative to the largest")
        self.plot.showGrid(y=True, alpha=0.3)
        self.bars: dict[str, pg.BarGraphItem] = {}
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.table = QTableWidget(0, 2)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.plot)
        splitter.addWidget(self.table)
        splitter.setStretchFactor(0, 1)  # a resize goes to the plot; the table keeps its fit
        splitter.setStretchFactor(1, 0)
        splitter.splitterMoved.connect(self._on_splitter_moved)
        self.splitter = splitter
        self._user_split = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.note)
        layout.addWidget(splitter, 1)
        self.set_metrics([])

    def set_orientation(self, orientation: Qt.Orientation) -> None:
        """Plot above the table (vertical) or beside it (horizontal)."""
        self.splitter.setOrientation(orientation)
        self._fit_table()

    def _on_splitter_moved(self, *_) -> None:
        self._user_split = True

    def _fit_table(self) -> None:
        """Side by side, the table gets the width of its columns (up to 70 %), so that
        every metric shows without scrolling, unless the user has moved the divider."""
        if self.splitter.orientation() != Qt.Orientation.Horizontal or self._user_split:
            return
        total = sum(self.splitter.sizes())
        if total <= 0:
            return
        t = self.table
        need = (t.horizontalHeader().length() + 2 * t.frameWidth()
                + t.verticalScrollBar().sizeHint().width())
        width = min(need, int(total * 0.7))
        self.splitter.setSizes([total - width, width])

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit_table()

    # -- state ---------------------------------------------------------------------

    def set_metrics(self, specs: list[MetricSpec], note: str | None = None) -> None:
        """Start over for a task with these metrics (none: run times only)."""
        self.specs = list(specs)
        self.rows.clear()
        if note is None:
            note = ("Bars: each metric relative to the largest value among the methods shown, "
                    "coloured as the table's rows; the table gives the values. Hover a "
                    "column title for the metric's meaning and convention."
                    if specs else "No fusion metrics are available in this build: only run "
                    "times are listed.")
        self.note.setText(note)
        self.plot.setVisible(bool(specs))
        # Keys (EN, SCD, FMI_pixel) are short enough for columns and ticks; the tooltip
        # gives the full name, meaning and convention.
        headers = ["Method", "Run time (s)"] + [s.key for s in self.specs]
        self.table.clear()
        self.table.setRowCount(0)
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        for col, spec in enumerate(self.specs, start=2):
            self.table.horizontalHeaderItem(col).setToolTip(spec.tooltip())
        self.table.horizontalHeaderItem(1).setToolTip("Wall-clock seconds of the fusion "
                                                      "(pipeline included, metrics excluded)")
        axis = self.plot.getAxis("bottom")
        axis.setTicks([[(i, s.key) for i, s in enumerate(self.specs)]])
        self.plot.setToolTip("<br><br>".join(s.tooltip() for s in self.specs))
        self._redraw()

    def clear_results(self) -> None:
        self.set_metrics(self.specs, self.note.text())

    def add_result(self, method: str, name: str, seconds: float, values: dict) -> None:
        self.rows[method] = {"name": name, "seconds": float(seconds), "values": dict(values)}
        self._fill_table()
        self._redraw()

    def set_order(self, methods) -> None:
        """List rows (and bars, and colours) in this order of method keys."""
        self.order = list(methods)
        self._fill_table()
        self._redraw()

    def set_hidden(self, methods) -> None:
        """Methods (keys) not to show: a baseline the user switched off."""
        self.hidden = set(methods)
        self._fill_table()
        self._redraw()

    def shown_methods(self) -> list[str]:
        rank = {m: i for i, m in enumerate(self.order)}
        return sorted((m for m in self.rows if m not in self.hidden),
                      key=lambda m: rank.get(m, len(rank)))

    def bar_heights(self, method: str) -> list[float]:
        """Heights of ``method``'s bars as drawn (for tests and reports)."""
        item = self.bars.get(method)
        if item is None:
            return []
        return [float(h) for h in item.opts["height"]]

    # -- drawing -------------------------------------------------------------------

    def colour(self, method: str) -> tuple[int, int, int]:
        """The bar colour of ``method`` (its row in the table carries the same swatch)."""
        return _COLOURS[self.shown_methods().index(method) % len(_COLOURS)]

    def _fill_table(self) -> None:
        methods = self.shown_methods()
        self.table.setRowCount(len(methods))
        for r, method in enumerate(methods):
            row = self.rows[method]
            cells = [row["name"], f"{row['seconds']:.3f}"]
            for spec in self.specs:
                v = row["values"].get(spec.key)
                cells.append("" if v is None or not np.isfinite(v) else f"{v:.4g}")
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c >= 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c >= 2:
                    item.setToolTip(self.specs[c - 2].tooltip())
                item.setData(Qt.ItemDataRole.UserRole, method)
                if c == 0:  # the table is the plot's legend
                    item.setData(Qt.ItemDataRole.DecorationRole, QColor(*self.colour(method)))
                self.table.setItem(r, c, item)
        self._fit_table()

    def _redraw(self) -> None:
        for item in self.bars.values():
            self.plot.removeItem(item)
        self.bars.clear()
        methods = self.shown_methods()
        if not self.specs or not methods:
            return
        values = np.array([[float(self.rows[m]["values"].get(s.key, np.nan)) for s in self.specs]
                           for m in methods], dtype=np.float64)
        values[~np.isfinite(values)] = np.nan
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a metric with no value yet
            top = np.nanmax(np.abs(values), axis=0)
            rel = values / np.where(top > 0, top, 1.0)
        rel = np.nan_to_num(rel, nan=0.0)
        width = 0.8 / len(methods)
        x0 = np.arange(len(self.specs), dtype=np.float64) - 0.4 + width / 2
        for i, method in enumerate(methods):
            colour = self.colour(method)
            item = pg.BarGraphItem(x=x0 + i * width, height=rel[i], width=width * 0.95,
                                   brush=pg.mkBrush(*colour), pen=pg.mkPen(None))
            self.plot.addItem(item)
            self.bars[method] = item
        self.plot.setXRange(-0.6, len(self.specs) - 0.4, padding=0)
        self.plot.setYRange(min(0.0, float(rel.min())), 1.05, padding=0)
