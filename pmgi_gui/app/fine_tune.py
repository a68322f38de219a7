"""*Fine-tune on this pair...*: tune the selected PMGI checkpoint on the pair in the
window with the user's loss weights ("more infrared intensity", "more texture"),
save it as a user checkpoint and hand it back to the window, which selects it and
fuses again so that the effect is seen at once.

The training itself is ``core.training.fine_tune`` and ``save_fine_tuned``; they run
in a :class:`FineTuneWorker` (QObject) on a QThread, started as the fusion worker is
(``background.WorkerThread``). ``fine_tune`` checks the cancel flag before each step, so
Cancel, closing the dialog and closing the window stop the run within one step;
nothing is saved then. Only numpy arrays and plain dataclasses cross threads: the
model is saved on the worker thread and the window receives the saved
:class:`~pmgi_gui.core.checkpoints.Checkpoint`.
"""

from __future__ import annotations

import html
import logging
import re
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (QDialog, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from .. import paths
from ..core.checkpoints import DEFAULT_MODEL, MANIFEST, Checkpoint
from ..core.errors import Cancelled, PmgiError
from ..core.tasks import FusionTask, Lambdas, PipelineOptions, get_task
from .background import CancellableWorker, WorkerThread
from .messages import MessageBoxes, ask_yes_no

__all__ = ["Preset", "PRESETS", "FineTuneRequest", "FineTuneOutcome", "FineTuneFailure",
           "FineTuneWorker", "FineTuneDialog", "default_name", "name_problem", "gui_threads"]

log = logging.getLogger(__name__)

DEFAULT_STEPS = 60
DEFAULT_BATCH = 8  # fine_tune's default
DEFAULT_LR = 1e-4  # fine_tune's default
# The rule of save_fine_tuned for a user checkpoint's folder name, checked before the
# run so that a bad name does not cost the user the training first.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TERMS = ("a_int", "a_grad", "b_int", "b_grad")


def _capital(text: str) -> str:
    """'infrared' -> 'Infrared'; 'PET' stays 'PET'."""
    return text[:1].upper() + text[1:]


def term_names(task: FusionTask) -> dict[str, str]:
    """The four loss weights in the task's words, e.g. 'Infrared intensity'."""
    a, b = _capital(task.role_a), _capital(task.role_b)
    return {"a_int": f"{a} intensity", "a_grad": f"{a} texture (gradient)",
            "b_int": f"{b} intensity", "b_grad": f"{b} texture (gradient)"}


@dataclass(frozen=True)
class Preset:
    """A quick change of the loss weights: each weight times its factor."""

    key: str
    text: str  # '{a}' is the role of A
    factors: tuple[float, float, float, float]  # a_int, a_grad, b_int, b_grad
    tip: str

    def title(self, task: FusionTask) -> str:
        return self.text.format(a=task.role_a)

    def apply(self, lambdas: Lambdas) -> Lambdas:
        values = lambdas.as_dict()
        return Lambdas(*(values[k] * f for k, f in zip(TERMS, self.factors)))


PRESETS = (
    Preset("more-a-intensity", "More {a} intensity", (2, 1, 1, 1),
           "Doubles the weight of A's intensity: the fused image keeps more of A's brightness"),
    Preset("more-texture", "More texture", (1, 2, 1, 2),
           "Doubles both gradient weights: the fused image keeps more edges and detail"),
    Preset("smoother", "Smoother", (1, 0.5, 1, 0.5),
           "Halves both gradient weights: the fused image follows the intensities more, "
           "with less fine texture"),
)


def _shipped(task: str, name: str) -> bool:
    return (paths.weights_dir() / task / name).exists()


def _user_exists(task: str, name: str) -> bool:
    return (paths.user_checkpoints_dir() / task / name / MANIFEST).is_file()


def name_problem(task: str, name: str) -> str | None:
    """Why ``name`` cannot be the new checkpoint's name, or None when it can (an
    existing user checkpoint of that name can, once the user confirms)."""
    if not NAME_PATTERN.fullmatch(name):
        return ("A checkpoint name has up to 64 letters, digits, '_', '.' and '-', and starts "
                f"with a letter or digit; {name!r} does not.")
    if _shipped(task, name):
        return (f"{name!r} is a checkpoint shipped with the program; it is never replaced. "
                "Choose another name.")
    return None


def gui_threads() -> int:
    """CPU threads for fine-tuning in the window: every core but one, which the GUI
    thread keeps. On a busy small machine this matters more than it seems: with as
    many threads as cores, torch's threads wait on each other and a step of a few
    patches took seconds instead of milliseconds (2 cores, another job running)."""
    from ..core.training import available_cores

    return max(1, available_cores() - 1)


def default_name(task: str, base: str) -> str:
    """``<base>-tuned``, or ``-tuned-2``, ``-tuned-3``, ... when that is taken; a blend's
    name (``paper@g1.41``) becomes ``paper-g1.41-tuned``."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", base)
    stem = re.sub(r"-tuned(-\d+)?$", "", base)[:48] or "checkpoint"
    n = 1
    while True:
        name = f"{stem}-tuned" + (f"-{n}" if n > 1 else "")
        if not _shipped(task, name) and not (paths.user_checkpoints_dir() / task / name).exists():
            return name
        n += 1


# -- the worker ---------------------------------------------------------------------

@dataclass(frozen=True)
class FineTuneRequest:
    task: str
    checkpoint: Checkpoint
    a: np.ndarray
    b: np.ndarray
    lambdas: Lambdas
    name: str
    label: str
    steps: int = DEFAULT_STEPS
    batch: int = DEFAULT_BATCH
    patch: int | None = None
    lr: float = DEFAULT_LR
    options: PipelineOptions = field(default_factory=PipelineOptions)
    device: str = "auto"
    overwrite: bool = False
    threads: int | None = None  # None: all cores but one (see gui_threads)


@dataclass(frozen=True)
class FineTuneOutcome:
    cancelled: bool
    checkpoint: Checkpoint | None  # the saved one; None when cancelled
    info: dict
    seconds: float
    message: str = ""


@dataclass(frozen=True)
class FineTuneFailure:
    message: str
    details: str = ""


class FineTuneWorker(CancellableWorker):
    """Fine-tunes and saves one checkpoint; lives on its own QThread."""

    progress = Signal(int, int, float)  # step, total, loss
    finished = Signal(object)  # FineTuneOutcome (also when cancelled)
    failed = Signal(object)  # FineTuneFailure

    def __init__(self, request: FineTuneRequest):
        super().__init__()
        self.request = request

    @Slot()
    def run(self) -> None:
        from ..core.training import fine_tune, save_fine_tuned

        r = self.request
        start = time.perf_counter()
        try:
            model, info = fine_tune(
                r.checkpoint, r.a, r.b, r.task, r.lambdas, r.steps,
                lambda step, total, loss, _rate: self.progress.emit(step, total, loss),
                self._cancel.is_set, batch=r.batch, patch=r.patch, lr=r.lr, options=r.options,
                device=r.device, threads=r.threads or gui_threads())
            if self._cancel.is_set():  # pressed after the last step: still nothing is saved
                raise Cancelled(f"fine-tuning cancelled after its {r.steps} steps")
            ckpt = save_fine_tuned(model, info, name=r.name, label=r.label, overwrite=r.overwrite)
            self.finished.emit(FineTuneOutcome(False, ckpt, info, time.perf_counter() - start))
        except Cancelled as exc:
            self.finished.emit(FineTuneOutcome(True, None, {}, time.perf_counter() - start, str(exc)))
        except PmgiError as exc:
            log.warning("fine-tuning failed: %s", exc)
            self.failed.emit(FineTuneFailure(str(exc)))
        except Exception as exc:  # a bug or a device error: still reach the user
            log.exception("fine-tuning failed")
            self.failed.emit(FineTuneFailure(f"{type(exc).__name__}: {exc}", traceback.format_exc()))


# -- the dialog ---------------------------------------------------------------------

class FineTuneDialog(QDialog):
    """Choose the new loss weights (or a preset), steps and a name; run with progress
    and Cancel. A saved checkpoint is announced by ``checkpoint_saved`` and the
    dialog closes; errors are shown here and logged (``logged`` feeds the window's log).
    """

    checkpoint_saved = Signal(object)  # Checkpoint
    logged = Signal(str, str)  # text, level

    def __init__(self, task: str, checkpoint: Checkpoint, a: np.ndarray, b: np.ndarray, *,
                 options: PipelineOptions | None = None, device: str = "auto",
                 pair_name: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.task = get_task(task)
        self.checkpoint = checkpoint
        self.a, self.b = a, b
        self.options = options or PipelineOptions()
        self.device = device
        self.pair_name = pair_name
        self.messages: list[tuple[str, str, str]] = []  # (level, title, text), newest last
        self._run = WorkerThread(self)
        self._run.ended.connect(self._on_thread_finished)
        self._started = 0.0
        self._boxes = MessageBoxes(self)
        self.setWindowTitle("Fine-tune on this pair")
        # The window stays visible (to compare) but cannot change the pair meanwhile.
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self._build()
        self.set_lambdas(checkpoint.lambdas)

    # ------------------------------------------------------------------ building

    def _build(self) -> None:
        t, c = self.task, self.checkpoint
        col = QVBoxLayout(self)

        self.base_label = QLabel(f"Base checkpoint: <b>{html.escape(c.label)}</b> "
                                 f"({html.escape(c.name)})<br>"
                                 f"Its loss weights: {html.escape(c.lambdas.describe(t))}")
        self.base_label.setWordWrap(True)
        col.addWidget(self.base_label)
        about = QLabel("Tunes the base checkpoint on the pair in the window only, with the loss "
                       "weights below. The base is kept; the result is saved as a new checkpoint "
                       "of yours, selected and fused at once.")
        about.setWordWrap(True)
        about.setStyleSheet("color: gray")
        col.addWidget(about)

        self.weights_box = QGroupBox("Loss weights of the new checkpoint")
        form = QFormLayout(self.weights_box)
        self.lambda_spins: dict[str, QDoubleSpinBox] = {}
        for key, text in term_names(t).items():
            spin = QDoubleSpinBox()
            spin.setRange(0.0, 10000.0)
            spin.setDecimals(4)
            spin.setStepType(QDoubleSpinBox.StepType.AdaptiveDecimalStepType)
            spin.setToolTip(f"λ {key}: how strongly the fused image is pulled towards the "
                            f"{text.lower()} (0 = not at all)")
            self.lambda_spins[key] = spin
            form.addRow(text, spin)
        row = QHBoxLayout()
        self.preset_buttons: dict[str, QPushButton] = {}
        for p in PRESETS:
            button = QPushButton(p.title(t))
            button.setToolTip(p.tip.replace("A's", f"the {t.role_a}'s") + " (press again for more)")
            button.clicked.connect(lambda _=False, key=p.key: self.apply_preset(key))
            self.preset_buttons[p.key] = button
            row.addWidget(button)
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("The base checkpoint's weights")
        self.reset_button.clicked.connect(lambda _=False: self.set_lambdas(self.checkpoint.lambdas))
        row.addWidget(self.reset_button)
        form.addRow(row)
        col.addWidget(self.weights_box)

        self.run_box = QGroupBox("Run")
        form = QFormLayout(self.run_box)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 100000)
        self.steps_spin.setValue(DEFAULT_STEPS)
        self.steps_spin.setToolTip("Training steps on random patches of this pair")
        self.name_edit = QLineEdit(default_name(t.name, c.name))
        self.name_edit.setToolTip("Name of the new checkpoint (its folder in your checkpoints): "
                                  "letters, digits, '_', '.' and '-'")
        from ..core.training import default_patch

        h, w = self.b.shape[:2]
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 256)
        self.batch_spin.setValue(DEFAULT_BATCH)
        self.batch_spin.setToolTip("Patches per step")
        self.patch_spin = QSpinBox()
        self.patch_spin.setRange(3, 4096)
        self.patch_spin.setValue(min(default_patch(t.name), h, w))
        self.patch_spin.setToolTip("Side of the square patches, in pixels (at most the image's size)")
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(0.000001, 0.1)
        self.lr_spin.setSingleStep(0.00005)
        self.lr_spin.setValue(DEFAULT_LR)
        self.lr_spin.setToolTip("Adam's learning rate (constant)")
        form.addRow("Steps", self.steps_spin)
        form.addRow("New checkpoint name", self.name_edit)
        form.addRow("Batch", self.batch_spin)
        form.addRow("Patch", self.patch_spin)
        form.addRow("Learning rate", self.lr_spin)
        col.addWidget(self.run_box)

        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, DEFAULT_STEPS)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("")
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        col.addWidget(self.progress_bar)
        col.addWidget(self.status_label)

        row = QHBoxLayout()
        self.run_button = QPushButton("Fine-tune")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current step; nothing is saved")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        row.addStretch(1)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.close_button)
        col.addLayout(row)

        if DEFAULT_MODEL not in c.models:
            self.run_button.setEnabled(False)
            self.status_label.setText(f"{c.name} holds one model per band; fine-tuning needs a "
                                      "single shared model (train one with pmgi train).")

    # ------------------------------------------------------------------ weights

    def lambdas(self) -> Lambdas:
        return Lambdas(*(self.lambda_spins[k].value() for k in TERMS))

    def set_lambdas(self, lambdas: Lambdas) -> None:
        for key, value in lambdas.as_dict().items():
            self.lambda_spins[key].setValue(value)

    def apply_preset(self, key: str) -> None:
        preset = next(p for p in PRESETS if p.key == key)
        self.set_lambdas(preset.apply(self.lambdas()))

    # ------------------------------------------------------------------ dialogs

    def ask_yes_no(self, title: str, text: str) -> bool:
        return ask_yes_no(self, title, text)

    def show_message(self, level: str, title: str, text: str) -> None:
        """Tell the user here (status line and a non-modal box) and log it."""
        self.messages.append((level, title, text))
        self.status_label.setText(f"{title}: {text}")
        self._log(f"{title}: {text}", level)
        if self.isVisible():
            self._boxes.show(level, title, text)

    def _log(self, text: str, level: str = "info") -> None:
        getattr(log, {"error": "error", "warning": "warning"}.get(level, "info"))(text)
        self.logged.emit(text, level)

    # ------------------------------------------------------------------ running

    def is_running(self) -> bool:
        return self._run.is_running()

    @property
    def worker(self) -> FineTuneWorker | None:
        return self._run.worker

    def request(self, overwrite: bool = False) -> FineTuneRequest:
        c = self.checkpoint
        label = c.label if c.label.endswith("fine-tuned") else f"{c.label}, fine-tuned"
        return FineTuneRequest(
            task=self.task.name, checkpoint=c, a=self.a, b=self.b, lambdas=self.lambdas(),
            name=self.name_edit.text().strip(), label=label, steps=self.steps_spin.value(),
            batch=self.batch_spin.value(), patch=self.patch_spin.value(), lr=self.lr_spin.value(),
            options=self.options, device=self.device, overwrite=overwrite)

    @Slot()
    def start(self) -> bool:
        """Check the name and weights, then fine-tune on the worker thread."""
        if self.is_running() or not self.run_button.isEnabled():
            return False
        name = self.name_edit.text().strip()
        problem = name_problem(self.task.name, name)
        if problem:
            self.show_message("warning", "Choose another name", problem)
            return False
        if not any(self.lambdas().as_dict().values()):
            self.show_message("warning", "No loss weight", "At least one loss weight must be above zero.")
            return False
        overwrite = False
        if _user_exists(self.task.name, name):
            if not self.ask_yes_no("Replace checkpoint?", f"You already have a checkpoint named "
                                   f"{name!r} for {self.task.title}. Replace it?"):
                self.status_label.setText("Not started: choose another name.")
                return False
            overwrite = True
        request = self.request(overwrite)
        worker = FineTuneWorker(request)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        self._started = time.perf_counter()
        self.progress_bar.setRange(0, request.steps)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat(f"Step 0 of {request.steps}")
        self.status_label.setText("Starting...")
        self._set_running(True)
        self._log(f"fine-tuning {self.checkpoint.name} into {name} on "
                  f"{self.pair_name or 'the loaded pair'}: {request.lambdas.describe(self.task)}, "
                  f"{request.steps} steps")
        self._run.start(worker, "fine-tune")
        return True

    @Slot()
    def cancel(self) -> None:
        if self._run.worker is not None:
            self._run.worker.cancel()
            self.status_label.setText("Cancelling after the current step...")

    def stop(self, timeout_ms: int = 30000) -> bool:
        """Cancel, quit and wait for the thread (dialog or window closing). True if it ended."""
        if not self._run.is_running():
            return True
        ended = self._run.stop(timeout_ms)
        if ended:
            self._set_running(False)
        return ended

    def done(self, result: int) -> None:  # accept, reject, Esc and close all end here
        self.stop()
        self._boxes.close_all()
        super().done(result)

    def _set_running(self, running: bool) -> None:
        for w in (self.weights_box, self.run_box):
            w.setEnabled(not running)
        self.run_button.setEnabled(not running and DEFAULT_MODEL in self.checkpoint.models)
        self.cancel_button.setEnabled(running)

    @Slot(int, int, float)
    def _on_progress(self, step: int, total: int, loss: float) -> None:
        per_step = (time.perf_counter() - self._started) / max(step, 1)
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(step)
        self.progress_bar.setFormat(f"Step {step} of {total}, loss {loss:.4g}")
        left = per_step * (total - step)
        self.status_label.setText(f"Step {step} of {total}: loss {loss:.4g} "
                                  f"({per_step:.2f} s per step, about {left:.0f} s left)")

    @Slot(object)
    def _on_finished(self, outcome: FineTuneOutcome) -> None:
        if outcome.cancelled:
            self.status_label.setText(f"Cancelled ({outcome.message}); nothing was saved.")
            self._log(f"fine-tuning cancelled ({outcome.message}); nothing saved")
            return
        ckpt, info = outcome.checkpoint, outcome.info
        loss = info.get("loss") or {}
        self.status_label.setText(f"Saved as {ckpt.name}.")
        self._log(f"fine-tuned {self.checkpoint.name} -> {ckpt.name} in {outcome.seconds:.1f} s on "
                  f"{info.get('device')}: loss {loss.get('first', float('nan')):.4g} -> "
                  f"{loss.get('final', float('nan')):.4g}; saved in {ckpt.path}")
        self.checkpoint_saved.emit(ckpt)
        if self.isVisible():
            self.accept()

    @Slot(object)
    def _on_failed(self, failure: FineTuneFailure) -> None:
        if failure.details:
            self._log(failure.details, "error")
        self.show_message("error", "Fine-tuning failed", failure.message)

    @Slot()
    def _on_thread_finished(self) -> None:
        self._set_running(False)
