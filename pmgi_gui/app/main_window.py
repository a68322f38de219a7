"""The application window: sources, task preset, checkpoint and device, fusion with
progress and cancel, linked views with comparison modes, the metrics panel, saving
and report export.

The window renders state and forwards requests: images are read by
``core.imageio``, fused by ``core.fusion`` on the worker thread, compared by
``core.comparison``. Dialogs go through small ``ask_*`` / ``show_message`` methods
so that tests can answer them without blocking.

Nothing here imports torch: at launch (``main.py``) the window is shown first, then
:meth:`MainWindow.start_up` lists the devices on a thread and fuses the demo pair
with the cheapest method first, while the worker imports torch for PMGI.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
from PySide6.QtCore import QByteArray, Qt, QThread, QTimer, Slot
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDockWidget, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QMainWindow, QPlainTextEdit, QProgressBar, QPushButton, QScrollArea, QSlider,
                               QToolButton, QVBoxLayout, QWidget)

from ..core import comparison
from ..core.baselines import baselines_for
from ..core.checkpoints import MANIFEST, Checkpoint, list_checkpoints, load_checkpoint
from ..core.colour import PET_COLORMAPS, apply_colormap
from ..core.errors import CheckpointError, ImageError, PmgiError
from ..core.fusion import PMGI_METHOD
from ..core.imageio import read_image, write_image
from ..core.spec import DEFAULT_TILE
from ..core.tasks import PAN_RATIO, TASKS, PipelineOptions, check_pair, get_task
from ..paths import resources_dir, user_checkpoints_dir
from ..core.family import family_for
from .background import start_worker
from .gradient_scale import GradientScaleControl
from .messages import MessageBoxes, ask_yes_no
from .metrics_panel import MetricsPanel, metric_specs
from .pictures import PictureMaker
from .report import write_metrics_report
from .settings import Settings, geometry_store
from .sources import IMAGE_SUFFIXES, Source, demo_sources, find_pair
from .views import ImagePanel, link_views
from .worker import (DeviceFinder, FusionJob, FusionRunner, JobFailure, JobSummary, MethodOutcome,
                     find_devices, metrics_module, window_metric_keys)

__all__ = ["MainWindow", "COMPARE_MODES"]

log = logging.getLogger(__name__)

# Comparison modes of the fused view: key -> (menu text, shortcut).
COMPARE_MODES = {
    "fused": ("Fused image", "Ctrl+1"),
    "swipe": ("Swipe (drag the divider)", "Ctrl+2"),
    "flicker": ("Flicker", "Ctrl+3"),
    "difference": ("Absolute difference", "Ctrl+4"),
}
FLICKER_MS = 600
MEDICAL_NOTE = ("Fused PET/MRI images are for visual assessment only, not for quantitation: "
                "fusion changes PET intensities, so no uptake value can be read from them.")


def _initial_capital(text: str) -> str:
    """'infrared' -> 'Infrared', and 'PET' stays 'PET' (str.capitalize would give 'Pet')."""
    return text[:1].upper() + text[1:]


class MainWindow(QMainWindow):
    """``find_devices=False`` offers Automatic and CPU until :meth:`start_up` (or
    :meth:`find_devices_in_background`) has listed the devices without blocking."""

    def __init__(self, settings: Settings | None = None, *, open_demo: bool = True,
                 find_devices: bool = True):
        super().__init__()
        self.setWindowTitle("PMGI Fusion Studio")
        self.settings = settings if settings is not None else Settings.load()
        self.task = self.settings.task
        self.sources: dict[str, Source | None] = {"a": None, "b": None}
        self.pair_error: str | None = None
        self.results: dict[str, MethodOutcome] = {}
        self.messages: list[tuple[str, str, str]] = []  # (level, title, text), newest last
        self.tile = DEFAULT_TILE
        self._peak: float | None = None
        self._display_cache: dict[tuple, np.ndarray] = {}  # source pictures; cleared with them
        self._boxes = MessageBoxes(self)
        self._flicker_on_ref = False
        self._closing = False
        self.fine_tune_dialog = None  # FineTuneDialog, made when first opened
        self._find_devices_now = find_devices
        self._devices_found = False
        self._device_thread: QThread | None = None
        self._device_finder: DeviceFinder | None = None
        self._method_order: list[str] = []  # how results are listed, whatever order they run in
        self._method_picked = False  # the user chose which result to show

        self.runner = FusionRunner(self)
        self.runner.progress.connect(self._on_progress)
        self.runner.method_finished.connect(self._on_method_finished)
        self.runner.metrics_ready.connect(self._on_metrics_ready)
        self.runner.finished.connect(self._on_job_finished)
        self.runner.failed.connect(self._on_job_failed)
        self.runner.busy_changed.connect(self._on_busy_changed)

        self.flicker_timer = QTimer(self)
        self.flicker_timer.setInterval(FLICKER_MS)
        self.flicker_timer.timeout.connect(self._on_flicker)
        # Differences and MS-on-the-PAN-grid pictures: large ones on a thread.
        self.pictures = PictureMaker(self)
        self.pictures.ready.connect(self._on_picture_ready)

        self._build_actions()
        self._build_ui()
        self._build_menus()
        self._restore_geometry()
        self._apply_task(self.task, load_demo=open_demo)

    # ==================================================================== building

    def _build_actions(self) -> None:
        def action(text, slot, shortcut=None, tip=None):
            act = QAction(text, self)
            if shortcut:
                act.setShortcuts([QKeySequence(s) for s in
                                  (shortcut if isinstance(shortcut, (list, tuple)) else [shortcut])])
            if tip:
                act.setStatusTip(tip)
            act.triggered.connect(slot)
            self.addAction(act)
            return act

        self.act_open_a = action("Open source &A...", lambda: self.open_source_dialog("a"),
                                 QKeySequence.StandardKey.Open)
        self.act_open_b = action("Open source &B...", lambda: self.open_source_dialog("b"),
                                 "Ctrl+Shift+O")
        self.act_open_pair = action("Open &pair folder...", self.open_pair_dialog, "Ctrl+Alt+O",
                                    "A folder holding the two sources, named after the task "
                                    "(ir.png + vis.png, pet.png + mri.png, ...)")
        self.act_demo = action("Load &demo pair", lambda: self.load_demo(), None)
        self.act_save = action("&Save fused image...", self.save_fused_dialog,
                               QKeySequence.StandardKey.Save)
        self.act_export = action("&Export report...", self.export_report_dialog, "Ctrl+E")
        self.act_import = action("&Import checkpoint folder...", self.import_checkpoint_dialog)
        self.act_quit = action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_fuse = action("&Fuse", self.request_fusion, ["Ctrl+Return", "F5"],
                               "Fuse the sources with PMGI and the chosen baselines")
        self.act_cancel = action("&Cancel", self.cancel_fusion, "Esc")
        self.act_cancel.setEnabled(False)
        self.act_fine_tune = action("Fine-&tune on this pair...", self.open_fine_tune_dialog, None,
                                    "Tune the selected checkpoint on this pair with your own loss "
                                    "weights (more intensity, more texture, smoother)")
        self.mode_group = QActionGroup(self)
        self.mode_actions: dict[str, QAction] = {}
        for mode, (text, shortcut) in COMPARE_MODES.items():
            act = action(text, lambda _=False, m=mode: self.set_compare_mode(m), shortcut)
            act.setCheckable(True)
            self.mode_group.addAction(act)
            self.mode_actions[mode] = act
        self.mode_actions["fused"].setChecked(True)

    def _build_menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        for act in (self.act_open_a, self.act_open_b, self.act_open_pair, self.act_demo, None,
                    self.act_save, self.act_export, None, self.act_import, None, self.act_quit):
            m.addSeparator() if act is None else m.addAction(act)
        m = self.menuBar().addMenu("F&usion")
        m.addAction(self.act_fuse)
        m.addAction(self.act_cancel)
        m.addSeparator()
        m.addAction(self.act_fine_tune)
        m = self.menuBar().addMenu("&Compare")
        for act in self.mode_actions.values():
            m.addAction(act)
        m = self.menuBar().addMenu("&View")
        m.addAction(self.metrics_dock.toggleViewAction())
        m.addAction(self.log_dock.toggleViewAction())

    def _build_ui(self) -> None:
        # -- left: the setup --------------------------------------------------------
        setup = QWidget()
        col = QVBoxLayout(setup)

        self.task_combo = QComboBox()
        for t in TASKS.values():
            self.task_combo.addItem(t.title, t.name)
        self.task_combo.setToolTip("Task preset: the roles of A and B, the pipeline and the "
                                   "checkpoints and baselines that fit")
        self.task_combo.currentIndexChanged.connect(self._on_task_chosen)
        form = QFormLayout()
        form.addRow("Task", self.task_combo)
        col.addLayout(form)

        box = QGroupBox("Sources")
        lay = QVBoxLayout(box)
        self.source_labels: dict[str, QLabel] = {}
        self.open_buttons: dict[str, QPushButton] = {}
        for role, act in (("a", self.act_open_a), ("b", self.act_open_b)):
            label = QLabel()
            label.setWordWrap(True)
            button = QPushButton()
            button.clicked.connect(act.trigger)
            self.source_labels[role], self.open_buttons[role] = label, button
            lay.addWidget(button)
            lay.addWidget(label)
        row = QHBoxLayout()
        pair_button = QPushButton("Open pair folder...")
        pair_button.clicked.connect(self.act_open_pair.trigger)
        demo_button = QPushButton("Demo pair")
        demo_button.clicked.connect(self.act_demo.trigger)
        row.addWidget(pair_button)
        row.addWidget(demo_button)
        lay.addLayout(row)
        hint = QLabel("Or drop an image on the A or B view.")
        hint.setStyleSheet("color: gray")
        lay.addWidget(hint)
        self.pair_label = QLabel()
        self.pair_label.setWordWrap(True)
        self.pair_label.setStyleSheet("color: #b00020")
        lay.addWidget(self.pair_label)
        col.addWidget(box)

        box = QGroupBox("PMGI checkpoint")
        lay = QVBoxLayout(box)
        self.checkpoint_combo = QComboBox()
        self.checkpoint_combo.currentIndexChanged.connect(self._on_checkpoint_chosen)
        self.lambdas_label = QLabel()
        self.lambdas_label.setWordWrap(True)
        self.no_checkpoint_label = QLabel()
        self.no_checkpoint_label.setWordWrap(True)
        self.no_checkpoint_label.setStyleSheet("color: #8a5a00")
        import_button = QPushButton("Import checkpoint folder...")
        import_button.clicked.connect(self.act_import.trigger)
        self.import_button = import_button
        row = QHBoxLayout()
        row.addWidget(self.checkpoint_combo, 1)
        self.fine_tune_button = QPushButton("Fine-tune...")
        self.fine_tune_button.setToolTip(self.act_fine_tune.statusTip())
        self.fine_tune_button.clicked.connect(self.act_fine_tune.trigger)
        row.addWidget(self.fine_tune_button)
        lay.addLayout(row)
        # Shown only for a checkpoint with gradient-scaled variants (core.family).
        self.gradient_control = GradientScaleControl()
        self.gradient_control.hide()
        self.gradient_control.scale_changed.connect(self._on_gradient_scale_changed)
        self.gradient_control.scale_chosen.connect(self._on_gradient_scale_chosen)
        lay.addWidget(self.gradient_control)
        lay.addWidget(self.lambdas_label)
        lay.addWidget(self.no_checkpoint_label)
        lay.addWidget(import_button)
        col.addWidget(box)

        box = QGroupBox("Device")
        form = QFormLayout(box)
        self.device_combo = QComboBox()
        self.device_label = QLabel()
        self.device_label.setWordWrap(True)
        self._fill_devices()
        self.device_combo.currentIndexChanged.connect(self._on_device_chosen)
        form.addRow("Run PMGI on", self.device_combo)
        form.addRow(self.device_label)
        col.addWidget(box)

        box = QGroupBox("Methods")
        self.methods_layout = QVBoxLayout(box)
        self.pmgi_check = QCheckBox("PMGI")
        self.pmgi_check.setChecked(True)
        self.methods_layout.addWidget(self.pmgi_check)
        self.baseline_checks: dict[str, QCheckBox] = {}
        col.addWidget(box)

        self.medical_box = QGroupBox("PET display")
        form = QFormLayout(self.medical_box)
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(PET_COLORMAPS)
        self.colormap_combo.setCurrentText(self.settings.pet_colormap)
        self.colormap_combo.setToolTip("Colour map given to a gray PET, for display and fusion")
        self.colormap_combo.currentTextChanged.connect(self._on_colormap_chosen)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(round(self.settings.pet_opacity * 100))
        self.opacity_slider.setToolTip("Opacity of the PET over the MRI in the blend view")
        self.opacity_slider.valueChanged.connect(self._refresh_blend_view)
        form.addRow("PET colour map", self.colormap_combo)
        form.addRow("PET opacity", self.opacity_slider)
        col.addWidget(self.medical_box)

        self.fuse_button = QPushButton("Fuse")
        self.fuse_button.setDefault(True)
        self.fuse_button.clicked.connect(self.act_fuse.trigger)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.act_cancel.trigger)
        row = QHBoxLayout()
        row.addWidget(self.fuse_button, 2)
        row.addWidget(self.cancel_button, 1)
        col.addLayout(row)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        self.progress_label = QLabel()
        col.addWidget(self.progress_bar)
        col.addWidget(self.progress_label)
        col.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(setup)
        scroll.setMinimumWidth(330)
        setup_dock = QDockWidget("Setup", self)
        setup_dock.setObjectName("setup")
        setup_dock.setWidget(scroll)
        setup_dock.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, setup_dock)

        # -- centre: the views --------------------------------------------------------
        centre = QWidget()
        lay = QVBoxLayout(centre)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Show"))
        self.show_combo = QComboBox()
        self.show_combo.setToolTip("Which method's result the fused view shows (and Save writes)")
        self.show_combo.currentIndexChanged.connect(self._refresh_fused_view)
        self.show_combo.activated.connect(self._on_method_picked)
        bar.addWidget(self.show_combo)
        bar.addSpacing(16)
        for mode, act in self.mode_actions.items():
            button = QToolButton()
            button.setDefaultAction(act)
            button.setToolTip(f"{act.text()} ({act.shortcut().toString()})")
            bar.addWidget(button)
        bar.addWidget(QLabel("against"))
        self.reference_combo = QComboBox()
        self.reference_combo.setToolTip("What the fused image is compared with")
        self.reference_combo.currentIndexChanged.connect(self._refresh_fused_view)
        bar.addWidget(self.reference_combo)
        bar.addStretch(1)
        lay.addLayout(bar)

        views = QHBoxLayout()
        self.panel_a = ImagePanel(accept_files=True)
        self.panel_b = ImagePanel(accept_files=True)
        self.panel_fused = ImagePanel("Fused")
        self.panel_blend = ImagePanel("PET over MRI")
        self.panels = [self.panel_a, self.panel_b, self.panel_fused, self.panel_blend]
        for p in self.panels:
            views.addWidget(p, 1)
            p.hovered.connect(self._on_hover)
        link_views(self.panels)
        self.panel_a.file_dropped.connect(lambda path: self._on_dropped("a", path))
        self.panel_b.file_dropped.connect(lambda path: self._on_dropped("b", path))
        lay.addLayout(views, 1)
        self.inspector_label = QLabel("Move the cursor over an image to read its values.")
        self.inspector_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.inspector_label)
        self.medical_note = QLabel(MEDICAL_NOTE)
        self.medical_note.setWordWrap(True)
        self.medical_note.setStyleSheet("color: #8a0000; font-weight: bold")
        lay.addWidget(self.medical_note)
        self.setCentralWidget(centre)

        # -- below the views: metrics, and the log ------------------------------------------
        # Below, not beside: the views are wider than tall there (square images used to
        # sit in tall narrow views), and the table shows every metric's column without
        # scrolling. The setup keeps the full height on the left.
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.metrics_panel = MetricsPanel()
        self.metrics_dock = QDockWidget("Metrics", self)
        self.metrics_dock.setObjectName("metrics")
        self.metrics_dock.setWidget(self.metrics_panel)
        self.metrics_dock.dockLocationChanged.connect(self._on_metrics_dock_moved)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.metrics_dock)
        self.resizeDocks([self.metrics_dock], [300], Qt.Orientation.Vertical)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        self.log_dock = QDockWidget("Log", self)
        self.log_dock.setObjectName("log")
        self.log_dock.setWidget(self.log_view)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log_dock)
        self.log_dock.hide()
        self.statusBar()

    @Slot(Qt.DockWidgetArea)
    def _on_metrics_dock_moved(self, area: Qt.DockWidgetArea) -> None:
        # Plot beside the table in a wide dock, above it in a tall one.
        wide = area in (Qt.DockWidgetArea.TopDockWidgetArea, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.metrics_panel.set_orientation(Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical)

    def _fill_devices(self) -> None:
        if self._find_devices_now:
            self._set_devices(find_devices())
        else:  # until the DeviceFinder has imported torch
            self._set_devices([("auto", "Automatic"), ("cpu", "CPU")], found=False)

    def _set_devices(self, devices: list[tuple[str, str]], found: bool = True) -> None:
        self._devices_found = found
        self.device_combo.blockSignals(True)
        self.device_combo.clear()
        for key, label in devices:
            self.device_combo.addItem(label, key)
        index = self.device_combo.findData(self.settings.device)
        self.device_combo.setCurrentIndex(max(index, 0))
        self.device_combo.blockSignals(False)
        self._show_device()

    def find_devices_in_background(self) -> None:
        """List the devices on a thread (it imports torch); the list fills in when done."""
        if self._devices_found or self._device_thread is not None:
            return
        finder = DeviceFinder()
        finder.finished.connect(self._on_devices_found)
        finder.failed.connect(self._on_devices_failed)
        self._device_finder = finder
        self._device_thread = start_worker(finder, "find-devices", self._on_device_thread_finished)

    @Slot(object)
    def _on_devices_found(self, devices: list) -> None:
        self._set_devices(devices)

    @Slot(object)
    def _on_devices_failed(self, message: str) -> None:
        self.log(f"cannot list the devices: {message}", "warning")

    @Slot()
    def _on_device_thread_finished(self) -> None:
        self._device_thread = self._device_finder = None

    # ==================================================================== dialogs
    # Each dialog goes through one method, so that tests answer without blocking.

    def ask_open_file(self, title: str, folder: str) -> Path | None:
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        name, _ = QFileDialog.getOpenFileName(self, title, folder,
                                              f"Images ({patterns});;All files (*)")
        return Path(name) if name else None

    def ask_directory(self, title: str, folder: str) -> Path | None:
        name = QFileDialog.getExistingDirectory(self, title, folder)
        return Path(name) if name else None

    def ask_save_file(self, title: str, suggestion: str, filters: str) -> Path | None:
        # Replacing is confirmed by ask_yes_no, with the source check first.
        name, _ = QFileDialog.getSaveFileName(self, title, suggestion, filters,
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        return Path(name) if name else None

    def ask_yes_no(self, title: str, text: str) -> bool:
        return ask_yes_no(self, title, text)

    def show_message(self, level: str, title: str, text: str) -> None:
        """Tell the user: status bar, log, and a non-modal message box (never blocks)."""
        self.messages.append((level, title, text))
        self.log(f"{title}: {text}", level)
        self.statusBar().showMessage(f"{title}: {text}", 15000)
        if not self._closing:
            self._boxes.show(level, title, text)

    def log(self, text: str, level: str = "info") -> None:
        getattr(log, {"error": "error", "warning": "warning"}.get(level, "info"))(text)
        self.log_view.appendPlainText(f"[{level}] {text}")

    # ==================================================================== task

    @Slot(int)
    def _on_task_chosen(self, index: int) -> None:
        name = self.task_combo.itemData(index)
        if name and name != self.task:
            self._apply_task(name, load_demo=self._sources_are_demo())

    def set_task(self, name: str) -> None:
        """Choose a task preset, as picking it in the Task list does."""
        get_task(name)
        self.task_combo.setCurrentIndex(self.task_combo.findData(name))

    @staticmethod
    def _is_demo(source: Source) -> bool:
        """A built-in demo source (or a synthetic one), not a file of the user's."""
        if source.path is None:
            return True
        demo_root = resources_dir() / "demo"
        return demo_root in source.path.parents

    def _sources_are_demo(self) -> bool:
        return all(s is None or self._is_demo(s) for s in self.sources.values())

    def _apply_task(self, name: str, *, load_demo: bool) -> None:
        self.runner.discard()
        self.task = name
        t = get_task(name)
        self.task_combo.blockSignals(True)
        self.task_combo.setCurrentIndex(self.task_combo.findData(name))
        self.task_combo.blockSignals(False)
        self.open_buttons["a"].setText(f"Open {t.role_a} (A)...")
        self.open_buttons["b"].setText(f"Open {t.role_b} (B)...")
        self.act_open_a.setText(f"Open {t.role_a} image (A)...")
        self.act_open_b.setText(f"Open {t.role_b} image (B)...")
        medical = name == "medical"
        self.medical_box.setVisible(medical)
        self.medical_note.setVisible(medical)
        self.panel_blend.setVisible(medical)
        self._fill_checkpoints()
        self._fill_baselines()
        self._clear_results()
        if load_demo:
            self.load_demo()
        else:
            self._sources_changed()

    # ==================================================================== checkpoints

    def _fill_checkpoints(self, select: str | None = None) -> None:
        t = get_task(self.task)
        found = list_checkpoints(self.task)
        self.checkpoint_combo.blockSignals(True)
        self.checkpoint_combo.clear()
        for c in found:
            self.checkpoint_combo.addItem(f"{c.label} ({c.name})", str(c.path))
            self.checkpoint_combo.setItemData(self.checkpoint_combo.count() - 1, self._checkpoint_tip(c),
                                              Qt.ItemDataRole.ToolTipRole)
        if found:
            # The user's last choice, else the task's default (paper), not the first by name.
            wanted = select or self.settings.checkpoints.get(self.task) or t.default_checkpoint
            index = next((i for i, c in enumerate(found) if c.name == wanted or str(c.path) == wanted), 0)
            self.checkpoint_combo.setCurrentIndex(index)
            self.checkpoint_combo.setEnabled(True)
            self.no_checkpoint_label.hide()
            self.pmgi_check.setEnabled(True)
            self.pmgi_check.setChecked(True)
            self.pmgi_check.setToolTip("")
        else:
            self.checkpoint_combo.addItem("(no checkpoint installed)")
            self.checkpoint_combo.setEnabled(False)
            explanation = (f"No PMGI checkpoint is installed for {t.title} yet, so PMGI cannot run. "
                           "Import a checkpoint folder (one converted with 'pmgi import-official', "
                           "or trained), or compare the classical baselines meanwhile.")
            self.no_checkpoint_label.setText(explanation)
            self.no_checkpoint_label.show()
            self.pmgi_check.setChecked(False)
            self.pmgi_check.setEnabled(False)
            self.pmgi_check.setToolTip(explanation)
        self.checkpoint_combo.blockSignals(False)
        # The slider where it was left, unless a checkpoint was just picked for the user.
        self._show_checkpoint(restore_scale=select is None)

    def _checkpoint_tip(self, c: Checkpoint) -> str:
        t = get_task(self.task)
        lines = [f"{c.label} ({c.name})", f"Loss weights: {c.lambdas.describe(t)}",
                 f"Normalisation: {c.normalisation}", f"Folder: {c.path}"]
        if c.lambdas != t.lambdas:
            lines.append(f"The paper's weights for this task: {t.lambdas.describe(t)}")
        return "\n".join(lines)

    def current_checkpoint(self) -> Checkpoint | None:
        """The checkpoint PMGI runs with: the selected one, or where the texture slider
        stands in its family (a member, or a blend that the worker computes)."""
        path = self.checkpoint_combo.currentData()
        if not path:
            return None
        try:
            selected = load_checkpoint(path)  # still there and valid
            if self.gradient_control.family is not None:
                return self.gradient_control.checkpoint()
            return selected
        except CheckpointError as exc:
            self.show_message("error", "Checkpoint unusable", str(exc))
            return None

    def checkpoints_listed(self) -> list[str]:
        """Names of the checkpoints the selector offers (empty when none)."""
        return [Path(self.checkpoint_combo.itemData(i)).name for i in range(self.checkpoint_combo.count())
                if self.checkpoint_combo.itemData(i)]

    def select_checkpoint(self, name: str) -> None:
        names = self.checkpoints_listed()
        if name not in names:
            raise PmgiError(f"no checkpoint {name!r} for {self.task} (have {', '.join(names)})")
        self.checkpoint_combo.setCurrentIndex(names.index(name))

    @Slot(int)
    def _on_checkpoint_chosen(self, _index: int) -> None:
        self._show_checkpoint(restore_scale=False)

    def _show_checkpoint(self, *, restore_scale: bool) -> None:
        """The selected checkpoint's loss weights, and the texture slider when it has a
        family: at the selected member's scale, or (``restore_scale``) where the user
        left it for this task."""
        self._update_fine_tune_enabled()
        control = self.gradient_control
        control.clear()
        control.hide()
        path = self.checkpoint_combo.currentData()
        if not path:
            self.lambdas_label.setText("")
            return
        try:
            c = load_checkpoint(path)
            family = family_for(c)  # manifests only: the weights are not read here
        except CheckpointError as exc:
            self.lambdas_label.setText(str(exc))
            return
        self.settings.checkpoints[self.task] = c.name
        if family is not None:
            own = next(g for g, m in family.members if m.sha256() == c.sha256())
            remembered = self.settings.gradient_scales.get(self.task)
            lo, hi = family.range
            scale = remembered if restore_scale and remembered and lo <= remembered <= hi else own
            control.set_family(family, self.task, scale)
            control.show()
            self.settings.gradient_scales[self.task] = control.scale()
            c = control.checkpoint()
        self._show_lambdas(c)

    def _show_lambdas(self, c: Checkpoint) -> None:
        # In words and numbers: which image's intensity and gradient the network keeps.
        t = get_task(self.task)
        self.lambdas_label.setText(f"Loss weights (λ): {c.lambdas.describe(t)}")
        self.lambdas_label.setToolTip(self._checkpoint_tip(c))

    @Slot(float)
    def _on_gradient_scale_changed(self, scale: float) -> None:
        self.settings.gradient_scales[self.task] = scale
        self._show_lambdas(self.gradient_control.checkpoint())

    @Slot(float)
    def _on_gradient_scale_chosen(self, _scale: float) -> None:
        """The texture slider was let go: fuse again with PMGI at the new scale, through
        the same job runner as the Fuse button (one job at a time, newest wins)."""
        if self.ready() and self.pmgi_check.isEnabled() and self.pmgi_check.isChecked():
            self.request_fusion(pmgi_only=True)

    def import_checkpoint_dialog(self) -> None:
        folder = self.ask_directory("Import a PMGI checkpoint folder", self.settings.checkpoint_dir)
        if folder is not None:
            self.import_checkpoint(folder)

    def import_checkpoint(self, folder: str | Path) -> Checkpoint | None:
        """Register a checkpoint folder: validate it and copy it to the user's checkpoints."""
        folder = Path(folder)
        self.settings.checkpoint_dir = str(folder.parent)
        try:
            c = load_checkpoint(folder)
            for key in c.models:
                c.load_model(None if key == "default" else int(key[4:]))  # hash and shapes
            dest_root = user_checkpoints_dir() / c.task
            dest = dest_root / c.name
            existing = load_checkpoint(dest) if (dest / MANIFEST).is_file() else None
            if existing is not None and existing.sha256() == c.sha256():
                registered = existing
            else:
                n = 2
                while dest.exists():
                    dest = dest_root / f"{c.name}-{n}"
                    n += 1
                dest.mkdir(parents=True)
                try:
                    for entry in c.models.values():
                        shutil.copy2(c.path / entry["file"], dest / entry["file"])
                    shutil.copy2(c.path / MANIFEST, dest / MANIFEST)
                    registered = load_checkpoint(dest)
                except BaseException:
                    shutil.rmtree(dest, ignore_errors=True)
                    raise
        except (PmgiError, OSError) as exc:
            self.show_message("error", "Cannot import checkpoint", str(exc))
            return None
        self.log(f"checkpoint {registered.name} ({registered.label}) registered for "
                 f"{registered.task} in {registered.path}")
        if registered.task == self.task:
            self._fill_checkpoints(select=registered.name)
            self.statusBar().showMessage(f"Checkpoint {registered.name} imported", 8000)
        else:
            self.show_message("info", "Checkpoint imported",
                              f"{registered.name} is a {get_task(registered.task).title} checkpoint; "
                              f"choose that task to use it.")
        return registered

    # ==================================================================== fine-tuning

    def _update_fine_tune_enabled(self) -> None:
        ok = self.ready() and bool(self.checkpoint_combo.currentData())
        self.act_fine_tune.setEnabled(ok)
        self.fine_tune_button.setEnabled(ok)

    def open_fine_tune_dialog(self):
        """*Fine-tune on this pair...*: the selected checkpoint, the loaded pair; returns the
        dialog (shown, not blocking) or None when there is nothing to tune."""
        from .fine_tune import FineTuneDialog  # only when asked: keeps start-up light

        old = self.fine_tune_dialog
        if old is not None and old.is_running():
            old.raise_()
            old.activateWindow()
            return old
        checkpoint = self.current_checkpoint() if self.ready() else None
        if checkpoint is None:
            self.show_message("warning", "Nothing to fine-tune",
                              "Load a valid pair and choose a PMGI checkpoint first.")
            return None
        if old is not None:
            old.deleteLater()
        a, b = self.sources["a"], self.sources["b"]
        dialog = FineTuneDialog(self.task, checkpoint, a.pixels, b.pixels,
                                options=self.pipeline_options(),
                                device=self.device_combo.currentData() or "auto",
                                pair_name=f"{a.name} + {b.name}", parent=self)
        dialog.checkpoint_saved.connect(self._on_fine_tuned)
        dialog.logged.connect(self.log)
        self.fine_tune_dialog = dialog
        dialog.show()
        return dialog

    @Slot(object)
    def _on_fine_tuned(self, checkpoint: Checkpoint) -> None:
        """A fine-tuned checkpoint was saved: list it, select it and fuse with it."""
        if self._closing or checkpoint.task != self.task:
            return
        self._fill_checkpoints(select=str(checkpoint.path))
        self.statusBar().showMessage(f"Fine-tuned checkpoint {checkpoint.name} saved", 8000)
        if self.ready():
            self.pmgi_check.setChecked(True)
            self.request_fusion()

    # ==================================================================== devices, options

    def _show_device(self) -> None:
        if not self._devices_found:
            self.device_label.setText("PMGI runs on: finding the devices... "
                                      "Baselines run on the CPU.")
            return
        from ..core.engine import choose_device  # torch is imported by now

        try:
            device = choose_device(self.device_combo.currentData() or "auto").type
        except PmgiError as exc:
            device = f"unavailable ({exc})"
        names = {"cuda": "CUDA GPU", "mps": "Apple MPS", "cpu": "CPU"}
        self.device_label.setText(f"PMGI runs on: {names.get(device, device)}. "
                                  "Baselines run on the CPU.")

    @Slot(int)
    def _on_device_chosen(self, _index: int) -> None:
        self.settings.device = self.device_combo.currentData() or "auto"
        self._show_device()

    def set_device(self, device: str) -> None:
        index = self.device_combo.findData(device)
        if index < 0:
            raise PmgiError(f"device {device} is not available here")
        self.device_combo.setCurrentIndex(index)

    def _fill_baselines(self) -> None:
        for box in self.baseline_checks.values():
            self.methods_layout.removeWidget(box)
            box.hide()  # deleteLater waits for the event loop; do not paint it meanwhile
            box.deleteLater()
        self.baseline_checks = {}
        for bl in baselines_for(self.task):
            box = QCheckBox(bl.name)
            box.setToolTip(bl.citation)
            box.setChecked(bl.key not in self.settings.baselines_off)
            box.toggled.connect(lambda on, key=bl.key: self._on_baseline_toggled(key, on))
            self.methods_layout.addWidget(box)
            self.baseline_checks[bl.key] = box

    def _on_baseline_toggled(self, key: str, on: bool) -> None:
        off = set(self.settings.baselines_off)
        (off.discard if on else off.add)(key)
        self.settings.baselines_off = sorted(off)
        self.metrics_panel.set_hidden(k for k, b in self.baseline_checks.items() if not b.isChecked())

    @Slot(str)
    def _on_colormap_chosen(self, name: str) -> None:
        self.settings.pet_colormap = name
        self._display_cache.clear()
        self.pictures.clear()
        self._refresh_source_views()

    def pipeline_options(self) -> PipelineOptions:
        return PipelineOptions(pet_colormap=self.colormap_combo.currentText())

    # ==================================================================== sources

    def open_source_dialog(self, role: str) -> None:
        t = get_task(self.task)
        path = self.ask_open_file(f"Open the {t.role_a if role == 'a' else t.role_b} image",
                                  self.settings.source_dir)
        if path is not None:
            self.load_source(role, path)

    def open_pair_dialog(self) -> None:
        folder = self.ask_directory("Open a pair folder", self.settings.source_dir)
        if folder is not None:
            self.load_pair_folder(folder)

    def _on_dropped(self, role: str, path: Path) -> None:
        if path.is_dir():
            self.load_pair_folder(path)
        else:
            self.load_source(role, path)

    def _read(self, path: Path) -> Source | None:
        try:
            return Source(read_image(path), Path(path))
        except ImageError as exc:
            self.show_message("warning", "Cannot open image", str(exc))
            return None

    def load_source(self, role: str, path: str | Path) -> bool:
        """Load source A or B from a file; an unreadable file is explained, never fatal."""
        path = Path(path)
        self.settings.source_dir = str(path.parent)
        source = self._read(path)
        if source is None:
            return False
        other = "b" if role == "a" else "a"
        if self.sources[other] is not None and self._is_demo(self.sources[other]):
            # The user starts a pair of their own: the demo's other half does not belong to it.
            self.sources[other] = None
        self.sources[role] = source
        self.log(f"{role.upper()}: {source.describe()}")
        self._sources_changed()
        return True

    def load_pair_folder(self, folder: str | Path) -> bool:
        folder = Path(folder)
        self.settings.source_dir = str(folder.parent)
        try:
            pa, pb = find_pair(folder, self.task)
        except ImageError as exc:
            self.show_message("warning", "Cannot open pair folder", str(exc))
            return False
        a, b = self._read(pa), self._read(pb)
        if a is None or b is None:
            return False
        self.set_sources(a, b)
        return True

    def load_demo(self) -> None:
        a, b = demo_sources(self.task)
        self.set_sources(a, b)

    def set_sources(self, a: Source, b: Source) -> None:
        self.sources = {"a": a, "b": b}
        self.log(f"A: {a.describe()}; B: {b.describe()}")
        self._sources_changed()

    def _sources_changed(self) -> None:
        self.runner.discard()
        self._display_cache.clear()
        self.pictures.clear()
        self._clear_results()
        t = get_task(self.task)
        a, b = self.sources["a"], self.sources["b"]
        for role, src, name in (("a", a, t.role_a), ("b", b, t.role_b)):
            self.source_labels[role].setText(f"{_initial_capital(name)}: "
                                             f"{src.describe() if src else 'not loaded'}")
        self.pair_error = None
        if a is not None and b is not None:
            try:
                check_pair(self.task, a.pixels, b.pixels)
            except PmgiError as exc:
                self.pair_error = str(exc)
        self.pair_label.setText(self.pair_error or "")
        if self.pair_error:
            self.show_message("warning", "These sources cannot be fused", self.pair_error)
        self._peak = None
        if self.task == "pan-sharpening" and a is not None and b is not None:
            self._peak = comparison.display_peak(a.pixels, b.pixels)
        self._refresh_source_views()
        self._refresh_fused_view()
        self._update_enabled()

    def ready(self) -> bool:
        return all(self.sources.values()) and self.pair_error is None

    # ==================================================================== display

    # Pictures are made once per source (and colour map) and per result (by the worker),
    # not at each refresh: flicker, swipe and the comparison list redraw often, and a
    # 16-bit or multispectral picture of 16 megapixels takes hundreds of milliseconds.

    def _display(self, pixels: np.ndarray) -> np.ndarray:
        return comparison.task_display(self.task, pixels, self._peak)

    def _result_display(self, outcome: MethodOutcome) -> np.ndarray:
        return outcome.display if outcome.display is not None else self._display(outcome.result.pixels)

    def _cached(self, key: tuple, make) -> np.ndarray:
        if key not in self._display_cache:
            self._display_cache[key] = make()
        return self._display_cache[key]

    def _source_display(self, role: str, on_fused_grid: bool = False) -> np.ndarray | None:
        """The picture of source ``role``; ``on_fused_grid``: of A brought to the fused
        image's grid (pan-sharpening's upsampled MS), to compare with a result: None
        while that is being made (seconds at 16 megapixels, on a thread)."""
        src = self.sources[role]
        if src is None:
            return None
        if on_fused_grid and role == "a" and self.task == "pan-sharpening":
            task, pixels, peak, b = self.task, src.pixels, self._peak, self.sources["b"]

            def make():  # on the picture thread: arrays only
                return comparison.task_display(task, comparison.on_fused_grid(task, pixels), peak)

            size = b.pixels.shape[0] * b.pixels.shape[1] if b is not None else pixels.size
            return self.pictures.get(("grid", role), make, size)

        def make():
            x = self._display(src.pixels)
            if self.task == "medical" and role == "a" and x.ndim == 2:
                x = apply_colormap(x, self.colormap_combo.currentText())  # a gray PET
            return x

        return self._cached((role, False), make)

    def _a_scale(self) -> float:
        a, b = self.sources["a"], self.sources["b"]
        if self.task == "pan-sharpening" and a is not None and b is not None:
            if b.pixels.shape[0] == PAN_RATIO * a.pixels.shape[0]:
                return float(PAN_RATIO)  # MS shown on the PAN grid, so views line up
        return 1.0

    def _refresh_source_views(self) -> None:
        t = get_task(self.task)
        for role, panel, name in (("a", self.panel_a, t.role_a), ("b", self.panel_b, t.role_b)):
            src = self.sources[role]
            title = f"{_initial_capital(name)} ({role.upper()})"
            panel.set_title(f"{title}: {src.name}" if src else title)
            x = self._source_display(role)
            if x is None:
                panel.clear(f"Drop the {name} image here")
            else:
                panel.set_image(x, scale=self._a_scale() if role == "a" else 1.0)
        self._refresh_blend_view()

    @Slot()
    def _refresh_blend_view(self, *_) -> None:
        if self.task != "medical":
            return
        alpha = self.opacity_slider.value() / 100.0
        self.settings.pet_opacity = alpha
        pet, mri = self._source_display("a"), self._source_display("b")
        if pet is None or mri is None or pet.shape[:2] != mri.shape[:2]:
            self.panel_blend.clear("PET over MRI appears when both are loaded")
            return
        self.panel_blend.set_image(comparison.opacity_blend(pet, mri, alpha))
        # One line, as the other views' titles, so that the four images line up.
        self.panel_blend.set_title(f"PET over MRI, {alpha:.0%} opacity")
        self.panel_blend.title.setToolTip("The PET laid over the MRI at the chosen opacity (a "
                                          "linear blend, as a viewer shows it), beside the "
                                          "learned fusion")

    def shown_method(self) -> str | None:
        return self.show_combo.currentData()

    def show_method(self, method: str) -> None:
        index = self.show_combo.findData(method)
        if index < 0:
            raise PmgiError(f"no result of {method} to show")
        self._method_picked = True
        self.show_combo.setCurrentIndex(index)

    def reference_image(self) -> tuple[str, np.ndarray | None] | None:
        """(name, display image on the fused grid) that the fused view is compared with;
        the image is None while it is being made."""
        key = self.reference_combo.currentData()
        t = get_task(self.task)
        if key in ("a", "b") and self.sources[key] is not None:
            return (t.role_a if key == "a" else t.role_b), self._source_display(key, on_fused_grid=True)
        if key in self.results:
            r = self.results[key]
            return r.name, self._result_display(r)
        return None

    def compare_mode(self) -> str:
        return next(m for m, a in self.mode_actions.items() if a.isChecked())

    def set_compare_mode(self, mode: str) -> None:
        if mode not in COMPARE_MODES:
            raise ValueError(f"unknown comparison mode {mode!r}")
        self.mode_actions[mode].setChecked(True)
        panel = self.panel_fused
        if mode == "swipe":
            shown = panel.shown()
            if shown is not None and not (0 < panel.divider.value() < shown.shape[1]):
                panel.divider.setValue(shown.shape[1] / 2)
        panel.divider.setVisible(mode == "swipe")
        if mode == "flicker":
            self._flicker_on_ref = False
            self.flicker_timer.start()
        else:
            self.flicker_timer.stop()
        self._refresh_fused_view()

    @Slot()
    def _on_flicker(self) -> None:
        self._flicker_on_ref = not self._flicker_on_ref
        self._refresh_fused_view()

    def flicker_toggle(self) -> None:
        """One flicker step (what the timer does), for keyboard users and tests."""
        self._on_flicker()

    @Slot()
    def _refresh_fused_view(self, *_) -> None:
        panel = self.panel_fused
        method = self.shown_method()
        if method is None or method not in self.results:
            panel.set_title("Fused")
            panel.clear("Press Fuse" if self.ready() else "")
            return
        outcome = self.results[method]
        fused = self._result_display(outcome)
        mode = self.compare_mode()
        levels = (0, 255)
        r = outcome.result
        ckpt = f" ({r.checkpoint})" if r.checkpoint else ""
        title = f"{outcome.name}{ckpt}: {r.seconds:.2f} s on {r.device}"
        shown, right = fused, None
        try:
            ref = self.reference_image() if mode != "fused" else None
            if ref is not None and ref[1] is None:
                title = f"{outcome.name} (preparing the {ref[0]} image to compare...)"
            elif mode == "swipe" and ref is not None:
                if ref[1].shape[:2] != fused.shape[:2]:
                    raise ValueError(f"images differ in size: {fused.shape[:2]} and {ref[1].shape[:2]}")
                right = ref[1]  # drawn right of the divider: dragging it composes nothing
                title = f"Swipe: {outcome.name} (left) | {ref[0]} (right)"
            elif mode == "flicker" and ref is not None:
                if self._flicker_on_ref:
                    shown, title = ref[1], f"Flicker: {ref[0]}"
                else:
                    title = f"Flicker: {outcome.name}"
            elif mode == "difference" and ref is not None:
                difference = self._difference(method, fused, ref[1])
                if difference is None:
                    title = f"{outcome.name} (computing the difference with {ref[0]}...)"
                else:
                    shown, peak = difference
                    levels = (0, max(peak, 1))
                    title = f"|{outcome.name} − {ref[0]}| (white = {peak} grey levels)"
        except ValueError as exc:
            title = f"{outcome.name} (cannot compare: {exc})"
            shown, right = fused, None
        panel.set_image(shown, levels=levels)
        panel.set_swipe(right)
        panel.set_title(title)

    def _difference(self, method: str, fused: np.ndarray, ref: np.ndarray):
        """(|fused - ref|, its largest value), or None while it is made on a thread."""
        def make():  # on the picture thread when large: arrays only
            d = comparison.absolute_difference(fused, ref)
            return d, int(d.max())

        key = ("difference", method, self.reference_combo.currentData())
        return self.pictures.get(key, make, fused.shape[0] * fused.shape[1])

    @Slot(object)
    def _on_picture_ready(self, _key) -> None:
        self._refresh_fused_view()

    # ==================================================================== pixel inspector

    @Slot(float, float)
    def _on_hover(self, x: float, y: float) -> None:
        text = self.inspect(int(np.floor(x)), int(np.floor(y)))
        if text:
            self.inspector_label.setText(text)

    @staticmethod
    def _value_text(pixels: np.ndarray, x: int, y: int) -> str:
        if not (0 <= y < pixels.shape[0] and 0 <= x < pixels.shape[1]):
            return "–"
        v = pixels[y, x]
        if np.ndim(v) == 0:
            return f"{v:g}" if pixels.dtype.kind == "f" else str(int(v))
        fmt = (lambda e: f"{e:g}") if pixels.dtype.kind == "f" else (lambda e: str(int(e)))
        return "(" + ", ".join(fmt(e) for e in v) + ")"

    def inspect(self, x: int, y: int) -> str:
        """A, B and fused values at (x, y) of the fused grid, as shown under the cursor."""
        t = get_task(self.task)
        a, b = self.sources["a"], self.sources["b"]
        if a is None and b is None:
            return ""
        scale = int(self._a_scale())
        parts = [f"x {x}, y {y}"]
        if a is not None:
            parts.append(f"{t.role_a} {self._value_text(a.pixels, x // scale, y // scale)}")
        if b is not None:
            parts.append(f"{t.role_b} {self._value_text(b.pixels, x, y)}")
        method = self.shown_method()
        if method in self.results:
            r = self.results[method]
            parts.append(f"{r.name} {self._value_text(r.result.pixels, x, y)}")
        return "   |   ".join(parts)

    # ==================================================================== fusion

    def _update_enabled(self) -> None:
        ok = self.ready()
        self.fuse_button.setEnabled(ok)
        self.act_fuse.setEnabled(ok)
        self._update_fine_tune_enabled()
        has_result = bool(self.results)
        self.act_save.setEnabled(has_result)
        self.act_export.setEnabled(has_result)

    def chosen_methods(self) -> list[tuple[str, str]]:
        methods = []
        if self.pmgi_check.isEnabled() and self.pmgi_check.isChecked():
            methods.append((PMGI_METHOD, "PMGI"))
        for bl in baselines_for(self.task):
            box = self.baseline_checks.get(bl.key)
            if box is not None and box.isChecked():
                methods.append((bl.key, bl.name))
        return methods

    def start_up(self) -> None:
        """What the application does once the window is shown: list the devices and
        fuse the demo pair, neither waiting for torch on this thread."""
        if self._closing:
            return
        self.find_devices_in_background()
        if self._sources_are_demo() and self.ready():
            self.request_fusion(cheapest_first=True)

    def request_fusion(self, *, cheapest_first: bool = False, pmgi_only: bool = False) -> int | None:
        """Fuse the sources with the chosen methods; a running job is cancelled first.

        ``cheapest_first``: run the first baseline (``average``, a per-pixel mean) before
        PMGI, so that a result is on screen while PMGI, or torch, is still loading;
        PMGI's result replaces it in the view unless the user chose one. Results are
        listed in the usual order (PMGI first) either way.

        ``pmgi_only`` (the checkpoint changed, nothing else): when every other chosen
        method already has its result and no job runs, only PMGI runs again and the
        other results stay; PMGI's previous result stays on screen until the new one
        replaces it. Otherwise all chosen methods run, as with the Fuse button.
        """
        if not all(self.sources.values()):
            self.show_message("warning", "Nothing to fuse", "Load both source images first.")
            return None
        if self.pair_error:
            self.show_message("warning", "These sources cannot be fused", self.pair_error)
            return None
        methods = self.chosen_methods()
        checkpoint = None
        if methods and methods[0][0] == PMGI_METHOD:
            checkpoint = self.current_checkpoint()
            if checkpoint is None:
                methods = methods[1:]
        if not methods:
            self.show_message("warning", "Nothing to run",
                              "Choose PMGI (with a checkpoint) or at least one baseline.")
            return None
        keys = window_metric_keys(self.task)
        order = [key for key, _ in methods]
        keep = (pmgi_only and order[0] == PMGI_METHOD and order == self._method_order
                and not self.runner.is_job_active() and all(k in self.results for k in order[1:]))
        if keep:
            methods = methods[:1]
        elif cheapest_first and methods[0][0] == PMGI_METHOD and len(methods) > 1:
            methods = [methods[1], methods[0], *methods[2:]]
        job = FusionJob(task=self.task, a=self.sources["a"].pixels, b=self.sources["b"].pixels,
                        methods=tuple(methods), checkpoint=checkpoint,
                        device=self.device_combo.currentData() or "auto",
                        options=self.pipeline_options(), tile=self.tile, metric_keys=keys,
                        display_peak=self._peak)
        if not keep:
            self._clear_results()
            self._method_order = order
            self.metrics_panel.set_order(order)
        job_id = self.runner.submit(job)
        names = ", ".join(n for _, n in methods)
        with_checkpoint = f" ({checkpoint.name})" if checkpoint is not None else ""
        self.log(f"job {job_id}: {self.task} with {names}{with_checkpoint}")
        self.progress_label.setText("Starting...")
        return job_id

    def cancel_fusion(self) -> None:
        if self.runner.is_running():
            self.runner.cancel()
            self.progress_label.setText("Cancelling...")

    def _clear_results(self) -> None:
        self.results.clear()
        self.pictures.forget(lambda key: key[0] == "difference")
        self._method_picked = False
        self.show_combo.blockSignals(True)
        self.show_combo.clear()
        self.show_combo.blockSignals(False)
        self._fill_reference_combo()
        specs = metric_specs(metrics_module(), window_metric_keys(self.task))
        note = None
        if self.task == "pan-sharpening" and specs:
            note = ("Full-resolution quality without a reference (QNR, D_lambda, D_s). "
                    "SAM, ERGAS and Q2n need the Wald protocol: 'pmgi evaluate' computes them.")
        self.metrics_panel.set_metrics(specs, note)
        self.metrics_panel.set_hidden(k for k, b in self.baseline_checks.items() if not b.isChecked())
        self._refresh_fused_view()
        self._update_enabled()

    def _fill_reference_combo(self) -> None:
        t = get_task(self.task)
        current = self.reference_combo.currentData()
        self.reference_combo.blockSignals(True)
        self.reference_combo.clear()
        self.reference_combo.addItem(f"A: {t.role_a}", "a")
        self.reference_combo.addItem(f"B: {t.role_b}", "b")
        for key, r in self.results.items():
            self.reference_combo.addItem(r.name, key)
        index = self.reference_combo.findData(current)
        self.reference_combo.setCurrentIndex(index if index >= 0 else 1)
        self.reference_combo.blockSignals(False)

    @Slot(int, float, str)
    def _on_progress(self, _job: int, fraction: float, text: str) -> None:
        self.progress_bar.setValue(int(round(fraction * 1000)))
        self.progress_label.setText(text)

    def _rank(self, method: str) -> int:
        order = self._method_order
        return order.index(method) if method in order else len(order)

    @Slot(int)
    def _on_method_picked(self, _index: int) -> None:
        self._method_picked = True

    @Slot(object)
    def _on_method_finished(self, outcome: MethodOutcome) -> None:
        """A result, fused; its metrics follow (:meth:`_on_metrics_ready`)."""
        self.results[outcome.method] = outcome
        self.pictures.forget(lambda key: key[0] == "difference" and outcome.method in key[1:])
        self.results = dict(sorted(self.results.items(), key=lambda kv: self._rank(kv[0])))
        combo = self.show_combo
        combo.blockSignals(True)
        at = combo.findData(outcome.method)  # listed already when PMGI alone ran again
        if at < 0:
            at = sum(self._rank(combo.itemData(i)) < self._rank(outcome.method)
                     for i in range(combo.count()))
            combo.insertItem(at, outcome.name, outcome.method)
        # The first result is shown; PMGI's takes its place unless the user chose one.
        if combo.count() == 1 or (outcome.method == PMGI_METHOD and not self._method_picked):
            combo.setCurrentIndex(at)
        combo.blockSignals(False)
        self._fill_reference_combo()
        r = outcome.result
        self.metrics_panel.add_result(outcome.method, outcome.name, r.seconds, outcome.metrics)
        ckpt = f" with {r.checkpoint}" if r.checkpoint else ""
        self.log(f"{outcome.name}{ckpt}: {r.seconds:.3f} s on {r.device}")
        self._refresh_fused_view()
        self._update_enabled()

    @Slot(object)
    def _on_metrics_ready(self, outcome: MethodOutcome) -> None:
        if outcome.method not in self.results:
            return
        self.results[outcome.method] = outcome
        self.metrics_panel.add_result(outcome.method, outcome.name, outcome.result.seconds,
                                      outcome.metrics)
        if outcome.metrics_error:
            self.log(f"metrics of {outcome.name} failed: {outcome.metrics_error}", "warning")

    def _job_ended(self) -> None:
        # The thread may take a moment more to end; the job itself is over.
        self.cancel_button.setEnabled(False)
        self.act_cancel.setEnabled(False)

    @Slot(object)
    def _on_job_finished(self, summary: JobSummary) -> None:
        self._job_ended()
        if summary.cancelled:
            self.progress_label.setText(f"Cancelled ({len(summary.outcomes)} method(s) finished)")
            self.statusBar().showMessage("Fusion cancelled", 5000)
        else:
            self.progress_label.setText(f"Done: {len(summary.outcomes)} method(s) in "
                                        f"{summary.seconds:.2f} s")
            self.statusBar().showMessage("Fusion finished", 5000)

    @Slot(object)
    def _on_job_failed(self, failure: JobFailure) -> None:
        self._job_ended()
        self.progress_label.setText("Failed")
        if failure.details:
            self.log(failure.details, "error")
        self.show_message("error", f"Fusion with {failure.method or 'the job'} failed", failure.message)

    @Slot(bool)
    def _on_busy_changed(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        self.act_cancel.setEnabled(busy)
        if busy:
            self.progress_bar.setValue(0)

    # ==================================================================== saving

    def _protected(self) -> tuple:
        return tuple(s.path for s in self.sources.values() if s is not None and s.path is not None)

    def save_fused_dialog(self) -> None:
        method = self.shown_method()
        if method not in self.results:
            self.show_message("info", "Nothing to save", "Fuse the sources first.")
            return
        a = self.sources["a"]
        stem = (a.path.parent.name if a and a.path else "fused") + f"_{method}"
        folder = Path(self.settings.save_dir) if self.settings.save_dir else Path.home()
        path = self.ask_save_file("Save the fused image", str(folder / f"{stem}.png"),
                                  "PNG image (*.png);;TIFF image (*.tif *.tiff)")
        if path is not None:
            self.save_fused(path)

    def save_fused(self, path: str | Path, method: str | None = None) -> Path | None:
        """Write a result with its own bit depth and bands; never over a source; asks
        before replacing another file."""
        method = method or self.shown_method()
        if method not in self.results:
            self.show_message("info", "Nothing to save", "Fuse the sources first.")
            return None
        pixels = self.results[method].result.pixels
        path = Path(path)
        if path.suffix == "":
            path = path.with_suffix(".png")
        self.settings.save_dir = str(path.parent)
        for src in self._protected():
            if path.exists() and src.exists() and path.samefile(src):
                self.show_message("error", "Not saved", f"{path.name} is a source image of this "
                                  "fusion; choose another name.")
                return None
        bands = 1 if pixels.ndim == 2 else pixels.shape[2]
        if path.suffix.lower() == ".png" and (bands > 4 or (bands == 4 and self.task == "pan-sharpening")):
            self.show_message("warning", "Not saved", f"PNG cannot hold {bands} spectral bands "
                              "faithfully; save as TIFF (.tif).")
            return None
        if path.suffix.lower() in (".jpg", ".jpeg", ".bmp") and pixels.dtype != np.uint8:
            self.show_message("warning", "Not saved", f"{path.suffix} cannot keep {pixels.dtype} "
                              "data; save as PNG or TIFF.")
            return None
        overwrite = False
        if path.exists():
            if not self.ask_yes_no("Replace file?", f"{path} exists. Replace it?"):
                self.statusBar().showMessage("Not saved", 5000)
                return None
            overwrite = True
        try:
            write_image(path, pixels, overwrite=overwrite, protect=self._protected())
        except PmgiError as exc:
            self.show_message("error", "Not saved", str(exc))
            return None
        self.log(f"saved {self.results[method].name} to {path} ({pixels.dtype}, {bands} band(s))")
        self.statusBar().showMessage(f"Saved {path}", 8000)
        return path

    def export_report_dialog(self) -> None:
        folder = self.ask_directory("Export the report into a folder", self.settings.report_dir)
        if folder is not None:
            self.export_report(folder)

    def _report_stem(self) -> str:
        a = self.sources["a"]
        return f"{self.task}_{a.path.parent.name if a and a.path else 'pair'}"

    def export_report(self, folder: str | Path) -> list[Path]:
        """Metrics as CSV and JSON, and a PNG of the views and the metrics panel."""
        folder = Path(folder)
        self.settings.report_dir = str(folder)
        if not self.results:
            self.show_message("info", "Nothing to export", "Fuse the sources first.")
            return []
        stem = self._report_stem()
        targets = [folder / f"{stem}_metrics.csv", folder / f"{stem}_metrics.json",
                   folder / f"{stem}_views.png"]
        if not folder.is_dir():
            self.show_message("error", "Report not exported", f"folder does not exist: {folder}")
            return []
        existing = [p.name for p in targets if p.exists()]
        if existing and not self.ask_yes_no("Replace files?", f"Replace {', '.join(existing)} in {folder}?"):
            return []
        protected = {p.resolve() for p in self._protected()}
        if any(p.resolve() in protected for p in targets):
            self.show_message("error", "Report not exported", "a report file would replace a source")
            return []
        rows = []
        for key in self.metrics_panel.shown_methods():
            o = self.results[key]
            rows.append({"method": key, "name": o.name, "seconds": o.result.seconds,
                         "device": o.result.device, "checkpoint": o.result.checkpoint,
                         "checkpoint_sha256": o.result.checkpoint_sha256, "metrics": o.metrics})
        meta = {"task": self.task,
                "sources": {"a": str(self.sources["a"].path or self.sources["a"].name),
                            "b": str(self.sources["b"].path or self.sources["b"].name)},
                "options": {"pet_colormap": self.pipeline_options().pet_colormap}}
        names = {s.key: s.name for s in self.metrics_panel.specs}
        try:
            csv_path, json_path = write_metrics_report(folder, stem, meta, rows, names)
            picture = self.grab_report_picture()
            if not picture.save(str(targets[2]), "PNG"):
                raise OSError(f"cannot write {targets[2]}")
        except OSError as exc:
            self.show_message("error", "Report not exported", str(exc))
            return []
        self.log(f"report written to {folder}")
        self.statusBar().showMessage(f"Report written to {folder}", 8000)
        return [csv_path, json_path, targets[2]]

    def grab_report_picture(self):
        """The views and the metrics panel as one QPixmap (GUI thread): the panel below
        the views, or beside them, as the window has it."""
        from PySide6.QtGui import QPainter, QPixmap

        views = self.centralWidget().grab()
        panel = self.metrics_panel.grab()
        below = self.dockWidgetArea(self.metrics_dock) in (Qt.DockWidgetArea.TopDockWidgetArea,
                                                           Qt.DockWidgetArea.BottomDockWidgetArea)
        if below:
            out = QPixmap(max(views.width(), panel.width()), views.height() + panel.height())
        else:
            out = QPixmap(views.width() + panel.width(), max(views.height(), panel.height()))
        out.fill(Qt.GlobalColor.white)
        painter = QPainter(out)
        painter.drawPixmap(0, 0, views)
        painter.drawPixmap(0 if below else views.width(), views.height() if below else 0, panel)
        painter.end()
        return out

    # ==================================================================== settings, closing

    def _restore_geometry(self) -> None:
        store = geometry_store()
        geometry, state = store.value("geometry"), store.value("state")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1500, 850)
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)

    def save_settings(self) -> None:
        self.settings.task = self.task
        if self._devices_found:  # else the combo may not offer the device chosen last time
            self.settings.device = self.device_combo.currentData() or "auto"
        self.settings.save()
        store = geometry_store()
        store.setValue("geometry", self.saveGeometry())
        store.setValue("state", self.saveState())
        store.sync()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self._closing = True
        self.flicker_timer.stop()
        self.gradient_control.choose_timer.stop()
        self.runner.stop()
        self.pictures.stop()
        if self.fine_tune_dialog is not None:
            self.fine_tune_dialog.stop()
        if self._device_thread is not None:  # an import cannot be interrupted: wait for it
            self._device_thread.quit()
            self._device_thread.wait()
        self._boxes.close_all()
        self.save_settings()
        super().closeEvent(event)
