"""Fuse a pair of source images with PMGI or a classical baseline, through the task's
pipeline: the one function that the command line, the evaluation tool and the
application window call."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .checkpoints import Checkpoint, find_checkpoint
from .errors import PmgiError
from .spec import DEFAULT_TILE
from .tasks import GrayFuse, PipelineOptions, fuse_pair, get_task, gray_fusions_needed

# The engine (and torch) are imported when PMGI first runs, not with this module:
# the baselines and the window's start-up do without them.
if TYPE_CHECKING:
    from .engine import Cancel, Progress, Workspace
    from .network import PMGI

__all__ = ["PMGI_METHOD", "PmgiFuser", "FusionResult", "fuse", "methods_for"]

PMGI_METHOD = "pmgi"


class PmgiFuser:
    """A checkpoint on a device, as a gray fusion method ``(a, b, band) -> fused``
    (gray float32 0..255 in and out, unclipped). Models are loaded once per band."""

    def __init__(self, checkpoint: Checkpoint, device: str = "auto", tile: int = DEFAULT_TILE,
                 precision: str = "fp32", workspace: Workspace | None = None):
        from .engine import Workspace, choose_device

        self.checkpoint = checkpoint
        self.device = choose_device(device)
        self.tile = tile
        self.precision = precision
        self._models: dict[str, PMGI] = {}
        # A reference model's level cache, kept between calls; fusers that run one after
        # another can share one, so that only one cache is held.
        self.workspace = workspace if workspace is not None else Workspace()
        self.progress: Progress | None = None
        self.cancel: Cancel | None = None

    def model(self, band: int | None) -> PMGI:
        key = self.checkpoint.model_key(band)
        if key not in self._models:
            model = self.checkpoint.load_model(band)
            # Conv-stack checkpoints are folded once; reference ones need each image's moments.
            self._models[key] = model.fold() if model.normalisation == "batch" else model
        return self._models[key]

    def __call__(self, a: np.ndarray, b: np.ndarray, band: int | None = None) -> np.ndarray:
        from .engine import fuse_gray

        y = fuse_gray(self.model(band), a, b, device=self.device, tile=self.tile,
                      precision=self.precision, progress=self.progress, cancel=self.cancel,
                      workspace=self.workspace)
        y *= 127.5  # from_network in place: this array can be 64 MB per 16 megapixels
        y += 127.5
        return y


@dataclass
class FusionResult:
    task: str
    method: str
    pixels: np.ndarray
    seconds: float
    device: str = "cpu"
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    extra: dict = field(default_factory=dict)


def methods_for(task: str) -> list[tuple[str, str]]:
    """(key, display name) of PMGI and each classical baseline for ``task``."""
    from .baselines import baselines_for

    return [(PMGI_METHOD, "PMGI")] + [(bl.key, bl.name) for bl in baselines_for(task)]


def fuse(task: str, a: np.ndarray, b: np.ndarray, *, method: str = PMGI_METHOD,
         checkpoint: Checkpoint | str | None = None, device: str = "auto",
         tile: int = DEFAULT_TILE, options: PipelineOptions | None = None,
         progress: Progress | None = None, cancel: Cancel | None = None,
         fuser: PmgiFuser | None = None) -> FusionResult:
    """Fuse two sources (as read from their files) for ``task`` with ``method``.

    ``progress(done, total)`` counts tiles over all gray fusions of the pipeline;
    ``cancel()`` is honoured between tiles (PMGI) or between methods' steps.
    """
    get_task(task)
    start = time.perf_counter()
    if method == PMGI_METHOD:
        if fuser is None:
            ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else find_checkpoint(checkpoint, task)
            fuser = PmgiFuser(ckpt, device=device, tile=tile)
        if fuser.checkpoint.task != task:
            raise PmgiError(f"checkpoint {fuser.checkpoint.name} was made for task "
                            f"{fuser.checkpoint.task}, not {task}")
        n = gray_fusions_needed(task, a)
        calls = [0]

        def step(done, total):
            if progress is not None:
                progress(calls[0] * total + done, n * total)

        def gray(a_, b_, band):
            fuser.progress, fuser.cancel = step, cancel
            try:
                return fuser(a_, b_, band)
            finally:
                calls[0] += 1
                fuser.progress = fuser.cancel = None

        pixels = fuse_pair(task, a, b, gray_fuse=gray, options=options)
        return FusionResult(task, method, pixels, time.perf_counter() - start, fuser.device.type,
                            fuser.checkpoint.name, fuser.checkpoint.sha256())
    from .baselines import BASELINES

    baseline = BASELINES.get(method)
    if baseline is None or task not in baseline.tasks:
        known = ", ".join(k for k, _ in methods_for(task))
        raise PmgiError(f"unknown method {method!r} for {task}; choose one of {known}")
    if cancel is not None and cancel():
        from .errors import Cancelled

        raise Cancelled("cancelled")
    if baseline.kind == "pan":
        pixels = fuse_pair(task, a, b, pan_fuse=baseline.fn, options=options)
    else:
        gray: GrayFuse = lambda a_, b_, band: baseline.fn(a_, b_)  # noqa: E731
        pixels = fuse_pair(task, a, b, gray_fuse=gray, options=options, pan_histogram_match=False)
    if progress is not None:
        progress(1, 1)
    return FusionResult(task, method, pixels, time.perf_counter() - start, "cpu")
