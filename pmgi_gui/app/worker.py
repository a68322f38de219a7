"""Fusion off the GUI thread.

A :class:`FusionWorker` (QObject) runs one :class:`FusionJob` on a QThread: first it
fuses with every chosen method, reporting each result as it is done, then it scores
them (metrics take longer than most fusions: FMI_pixel alone is about 80 s at 16
megapixels), reporting each method's metrics. It is started as every worker of the
application is (``background.WorkerThread``: superqt's ``new_worker_qthread`` wiring).
The core honours ``cancel`` between tiles and between methods, so a job stops within
one tile.

:class:`FusionRunner` is what the window owns: one job at a time; a new request
cancels the running job and starts once its thread has ended; ``stop()`` on close
cancels, quits and waits. Only numpy arrays and plain dataclasses cross threads.

torch is imported on the worker thread when PMGI first runs, never at start-up: the
window is shown, and baselines run, without waiting for it.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
import traceback
from dataclasses import dataclass, field, replace

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from ..core.checkpoints import Checkpoint
from ..core.comparison import task_display
from ..core.errors import Cancelled, PmgiError
from ..core.fusion import PMGI_METHOD, FusionResult, PmgiFuser, fuse
from ..core.spec import DEFAULT_TILE
from ..core.tasks import PipelineOptions
from .background import CancellableWorker, WorkerThread

__all__ = ["FusionJob", "MethodOutcome", "JobSummary", "JobFailure", "FusionWorker",
           "FusionRunner", "DeviceFinder", "find_devices", "freeze_long_lived_objects",
           "metrics_module", "window_metric_keys"]

log = logging.getLogger(__name__)


def freeze_long_lived_objects() -> None:
    """Leave what exists now (modules, widgets, torch: ~230,000 objects) out of the
    cyclic garbage collector's full passes.

    A full pass walks every tracked object holding the GIL: ~120 ms here on two loaded
    cores, during which the GUI thread cannot run Python, whichever thread's allocation
    set the pass off. These objects live as long as the application; reference counting
    still frees any of them that dies (``gc.freeze``). Called once the window is up and
    again after torch is imported.
    """
    gc.freeze()


def metrics_module():
    """``pmgi_gui.core.metrics`` when it can be imported, else None (no metrics shown)."""
    try:
        from ..core import evaluation, metrics  # noqa: F401  (score() lives in evaluation)
    except ImportError:
        return None
    return metrics


def window_metric_keys(task: str) -> tuple[str, ...]:
    """The task's metrics that one fused pair can give: the paper's set, less those
    that need a reference image (pan-sharpening's Wald-protocol SAM, ERGAS, Q2n,
    which ``pmgi evaluate`` computes)."""
    metrics = metrics_module()
    if metrics is None:
        return ()
    return tuple(k for k in metrics.TASK_METRICS.get(task, ())
                 if metrics.METRICS[k].inputs != "reference_fused")


def find_devices() -> list[tuple[str, str]]:
    """(key, label) of each device PMGI can run on here, ``auto`` first. Imports torch
    (about a second): the window calls it on a :class:`DeviceFinder` thread at start-up."""
    import torch

    from ..core.engine import choose_device

    freeze_long_lived_objects()  # torch's ~150,000 objects
    devices = [("auto", f"Automatic ({choose_device('auto').type.upper()})"), ("cpu", "CPU")]
    if torch.cuda.is_available():
        devices.append(("cuda", f"CUDA ({torch.cuda.get_device_name(0)})"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(("mps", "Apple MPS"))
    return devices


class DeviceFinder(QObject):
    """Runs :func:`find_devices` on its own QThread, so the window need not wait for torch."""

    finished = Signal(object)  # list[(key, label)]
    failed = Signal(object)  # str

    @Slot()
    def run(self) -> None:
        try:
            self.finished.emit(find_devices())
        except Exception as exc:  # a broken torch install: the window still opens, on the CPU
            log.exception("cannot list the devices")
            self.failed.emit(f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class FusionJob:
    task: str
    a: np.ndarray
    b: np.ndarray
    methods: tuple[tuple[str, str], ...]  # (key, display name), in the order they run
    checkpoint: Checkpoint | None = None
    device: str = "auto"
    options: PipelineOptions = field(default_factory=PipelineOptions)
    tile: int = DEFAULT_TILE
    metric_keys: tuple[str, ...] = ()
    display_peak: float | None = None  # the pair's white point (pan-sharpening display)
    job_id: int = 0


@dataclass(frozen=True)
class MethodOutcome:
    job_id: int
    method: str
    name: str
    result: FusionResult
    metrics: dict  # empty until the job has scored this result
    metrics_error: str | None = None
    # The uint8 picture the views show, made here: for 16 bits or many bands it costs
    # hundreds of milliseconds at 16 megapixels, too long for the GUI thread.
    display: np.ndarray | None = None


@dataclass(frozen=True)
class JobSummary:
    job_id: int
    cancelled: bool
    outcomes: tuple[MethodOutcome, ...]
    seconds: float


@dataclass(frozen=True)
class JobFailure:
    job_id: int
    method: str
    message: str
    details: str = ""


class FusionWorker(CancellableWorker):
    """Runs one job; lives on its own QThread."""

    # job id, fraction done 0..1, what is running
    progress = Signal(int, float, str)
    method_finished = Signal(object)  # MethodOutcome, fused, metrics still empty
    metrics_ready = Signal(object)  # MethodOutcome, the same result with its metrics
    finished = Signal(object)  # JobSummary (also when cancelled)
    failed = Signal(object)  # JobFailure

    def __init__(self, job: FusionJob):
        super().__init__()
        self.job = job

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("cancelled")

    @Slot()
    def run(self) -> None:
        job = self.job
        start = time.perf_counter()
        outcomes: list[MethodOutcome] = []
        n = max(len(job.methods), 1)
        scoring = bool(job.metric_keys) and metrics_module() is not None
        steps = 2 * n if scoring else n
        method = ""

        def summary(cancelled: bool) -> JobSummary:
            return JobSummary(job.job_id, cancelled, tuple(outcomes), time.perf_counter() - start)

        try:
            for i, (method, name) in enumerate(job.methods):
                self._check_cancel()
                self.progress.emit(job.job_id, i / steps, f"{name}...")

                def step(done, total, i=i, name=name):
                    if total:
                        self.progress.emit(job.job_id, (i + done / total) / steps, f"{name}...")

                result = self._fuse(method, step)
                display = task_display(job.task, result.pixels, job.display_peak)
                self._check_cancel()
                outcomes.append(MethodOutcome(job.job_id, method, name, result, {}, display=display))
                self.method_finished.emit(outcomes[-1])
            if scoring:
                for i, outcome in enumerate(outcomes):
                    method = outcome.method
                    self._check_cancel()
                    self.progress.emit(job.job_id, (n + i) / steps, f"Metrics of {outcome.name}...")
                    outcomes[i] = self._measure(outcome)
                    self.metrics_ready.emit(outcomes[i])
            self.progress.emit(job.job_id, 1.0, "done")
            self.finished.emit(summary(False))
        except Cancelled:
            self.finished.emit(summary(True))
        except PmgiError as exc:
            log.warning("%s failed: %s", method, exc)
            self.failed.emit(JobFailure(job.job_id, method, str(exc)))
        except Exception as exc:  # a bug or a device error: still reach the user
            log.exception("%s failed", method)
            self.failed.emit(JobFailure(job.job_id, method, f"{type(exc).__name__}: {exc}",
                                        traceback.format_exc()))

    def _fuse(self, method: str, step) -> FusionResult:
        job = self.job
        if method == PMGI_METHOD:
            if job.checkpoint is None:
                raise PmgiError(f"no PMGI checkpoint chosen for {job.task}")
            first = "torch" not in sys.modules  # the first PMGI run of a session imports it
            import torch

            if first:
                freeze_long_lived_objects()
            # inference_mode is thread-local: it must be entered on this thread.
            with torch.inference_mode():
                fuser = PmgiFuser(job.checkpoint, device=job.device, tile=job.tile)
                return fuse(job.task, job.a, job.b, method=method, fuser=fuser,
                            options=job.options, progress=step, cancel=self._cancel.is_set)
        return fuse(job.task, job.a, job.b, method=method, options=job.options, progress=step,
                    cancel=self._cancel.is_set)

    def _measure(self, outcome: MethodOutcome) -> MethodOutcome:
        from ..core.evaluation import score

        job = self.job
        values, error = {}, None
        try:
            # The same inputs as the evaluation tool: 8-bit luma, or MS/PAN/fused bands.
            values = dict(score(job.task, job.a, job.b, outcome.result.pixels, job.metric_keys))
        except Exception as exc:  # metrics are extra: the fused image still counts
            log.warning("metrics of %s failed: %s", outcome.method, exc)
            error = f"{type(exc).__name__}: {exc}"
        return replace(outcome, metrics=values, metrics_error=error)


class FusionRunner(QObject):
    """Owns the worker thread: one job at a time, newest request wins.

    Signals are relayed only for the latest submitted job, so results of a job that
    was replaced never reach the window.
    """

    progress = Signal(int, float, str)
    method_finished = Signal(object)
    metrics_ready = Signal(object)
    finished = Signal(object)
    failed = Signal(object)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._run = WorkerThread(self)
        self._run.ended.connect(self._on_thread_finished)
        self._pending: FusionJob | None = None
        self._next_id = 0
        self._current_id = -1
        self._ended_id = -1  # the latest job that reported finished or failed

    @property
    def worker(self) -> FusionWorker | None:
        return self._run.worker

    @property
    def current_job_id(self) -> int:
        return self._current_id

    def is_running(self) -> bool:
        return self._run.is_running()

    def is_job_active(self) -> bool:
        """The latest submitted job has not reported its end yet (its thread may still
        be ending after it has: see :meth:`is_running`)."""
        return self._current_id != -1 and self._ended_id != self._current_id

    def submit(self, job: FusionJob) -> int:
        """Start ``job``, cancelling the running one first. Returns the job's id."""
        self._next_id += 1
        job = replace(job, job_id=self._next_id)
        self._current_id = job.job_id
        if self._run.is_running():
            self._pending = job
            self._run.worker.cancel()
        else:
            self._start(job)
        return job.job_id

    def cancel(self) -> None:
        self._pending = None
        if self._run.worker is not None:
            self._run.worker.cancel()

    def discard(self) -> None:
        """Cancel and drop the running job: none of its signals reach the window any more
        (its sources or task were replaced)."""
        self.cancel()
        self._current_id = -1

    def stop(self, timeout_ms: int = 30000) -> bool:
        """Cancel, quit and wait for the thread (window closing). True if it ended."""
        self._pending = None
        if not self._run.is_running():
            return True
        ended = self._run.stop(timeout_ms)
        if ended:
            self.busy_changed.emit(False)
        return ended

    def _start(self, job: FusionJob) -> None:
        worker = FusionWorker(job)
        worker.progress.connect(self._on_progress)
        worker.method_finished.connect(self._on_method_finished)
        worker.metrics_ready.connect(self._on_metrics_ready)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        self.busy_changed.emit(True)
        self._run.start(worker, f"fusion-job-{job.job_id}")

    @Slot(int, float, str)
    def _on_progress(self, job_id: int, fraction: float, text: str) -> None:
        if job_id == self._current_id:
            self.progress.emit(job_id, fraction, text)

    @Slot(object)
    def _on_method_finished(self, outcome: MethodOutcome) -> None:
        if outcome.job_id == self._current_id:
            self.method_finished.emit(outcome)

    @Slot(object)
    def _on_metrics_ready(self, outcome: MethodOutcome) -> None:
        if outcome.job_id == self._current_id:
            self.metrics_ready.emit(outcome)

    @Slot(object)
    def _on_finished(self, summary: JobSummary) -> None:
        if summary.job_id == self._current_id:
            self._ended_id = summary.job_id
            self.finished.emit(summary)

    @Slot(object)
    def _on_failed(self, failure: JobFailure) -> None:
        if failure.job_id == self._current_id:
            self._ended_id = failure.job_id
            self.failed.emit(failure)

    @Slot()
    def _on_thread_finished(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._start(pending)
        else:
            self.busy_changed.emit(False)
