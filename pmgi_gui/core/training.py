"""Training PMGI: the loss of Eq. 1-3, co-located patch pairs from a task's training
pairs, a deterministic and resumable trainer, and fine-tuning a checkpoint on one
pair with new loss weights.

The loss (PMGI_REFERENCE.md, "Loss"), on images in the network range [-1, 1]::

    L = 100 * (a_int  * mean((F - A)^2) + a_grad * mean((lap F - lap A)^2)
             + b_int  * mean((F - B)^2) + b_grad * mean((lap F - lap B)^2))

with the 4-neighbour Laplacian [[0, 1, 0], [1, -4, 1], [0, 1, 0]] and 'SAME' zero
padding; each mean runs over every pixel of the batch.

The gray inputs A and B of a training pair are made by
:func:`pmgi_gui.core.tasks.network_inputs`, the function the inference pipelines
use, so a network learns on what it will be fed.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import math
import os
import re
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ._atomic import atomic_write
from .checkpoints import (DEFAULT_MODEL, Checkpoint, find_checkpoint, load_checkpoint,
                          save_checkpoint)
from .errors import Cancelled, CheckpointError, PmgiError
from .network import PMGI, to_network
from .tasks import Lambdas, PipelineOptions, get_task, network_inputs

__all__ = [
    "LOSS_SCALE",
    "LAPLACIAN",
    "INIT_STD",
    "SCHEDULES",
    "TrainProgress",
    "Cancel",
    "laplacian",
    "loss_terms",
    "weighted_loss",
    "pmgi_loss",
    "default_patch",
    "init_weights",
    "pair_weights",
    "TrainingPair",
    "TrainingData",
    "load_training_data",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "train",
    "state_path_for",
    "fine_tune",
    "save_fine_tuned",
    "evaluate_model",
]

LOSS_SCALE = 100.0
LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
# The released code initialises every kernel with tf.truncated_normal(stddev=1e-3)
# (redrawn beyond two standard deviations) and every bias with zeros.
INIT_STD = 1e-3
SCHEDULES = ("cosine", "step", "constant")
TERMS = ("a_int", "a_grad", "b_int", "b_grad")
STATE_FORMAT = "pmgi-train-state"
STATE_VERSION = 1
LOSS_CSV = "loss.csv"
# Medical slices of one series within this many slice numbers count as near-duplicates.
SLICE_NEIGHBOURHOOD = 2

TrainProgress = Callable[[int, int, float, float], None]  # step, total, loss, patches/s
Cancel = Callable[[], bool]


# -- loss ------------------------------------------------------------------------

def laplacian(x: torch.Tensor) -> torch.Tensor:
    """4-neighbour Laplacian of N x 1 x H x W images, 'SAME' zero padding."""
    kernel = torch.tensor(LAPLACIAN, dtype=x.dtype, device=x.device).view(1, 1, 3, 3)
    return F.conv2d(x, kernel, padding=1)  # symmetric kernel: correlation = convolution


def loss_terms(f: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    """The four unweighted terms of Eq. 1-3: mean squared intensity and Laplacian
    differences of the fused image ``f`` to ``a`` and to ``b`` (all in [-1, 1])."""
    lf = laplacian(f)
    return {
        "a_int": torch.mean((f - a) ** 2),
        "a_grad": torch.mean((lf - laplacian(a)) ** 2),
        "b_int": torch.mean((f - b) ** 2),
        "b_grad": torch.mean((lf - laplacian(b)) ** 2),
    }


def weighted_loss(terms: dict[str, torch.Tensor], lambdas: Lambdas) -> torch.Tensor:
    w = lambdas.as_dict()
    return LOSS_SCALE * sum(w[k] * terms[k] for k in TERMS)


def pmgi_loss(f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, lambdas: Lambdas) -> torch.Tensor:
    """The PMGI loss L of Eq. 1-3 (times 100, as the released code)."""
    return weighted_loss(loss_terms(f, a, b), lambdas)


def check_lambdas(lambdas: Lambdas) -> Lambdas:
    values = list(lambdas.as_dict().values())
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise PmgiError(f"loss weights must be finite and not negative, got {lambdas.as_dict()}")
    if not any(values):
        raise PmgiError("at least one loss weight must be above zero")
    return lambdas


# -- initialisation --------------------------------------------------------------

def default_patch(task: str) -> int:
    """The paper's patch size: 60 for multi-focus, 120 otherwise."""
    return 60 if get_task(task).name == "multi-focus" else 120


def init_weights(model: PMGI, generator: torch.Generator | None = None) -> PMGI:
    """Kernels from N(0, 1e-3) truncated at two standard deviations, biases 0, batch
    norm gamma 1 and beta 0 with fresh running statistics, like the released code."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.trunc_normal_(m.weight, 0.0, INIT_STD, -2 * INIT_STD, 2 * INIT_STD,
                                      generator=generator)
                m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.reset_parameters()
    return model


def _initial_model(init: Checkpoint | str | os.PathLike | None, task: str, seed: int) -> tuple[PMGI, dict]:
    """A batch-normalised network: freshly initialised, or started from ``init``."""
    model = PMGI("batch")
    if init is None:
        init_weights(model, torch.Generator().manual_seed(seed))
        return model, {"kind": "truncated normal", "std": INIT_STD, "truncation": "2 std",
                       "biases": 0, "seed": seed}
    ckpt = init if isinstance(init, Checkpoint) else find_checkpoint(init, task)
    if ckpt.task != task:
        raise CheckpointError(f"checkpoint {ckpt.name} was made for task {ckpt.task}, not {task}")
    if DEFAULT_MODEL not in ckpt.models:
        raise PmgiError(f"checkpoint {ckpt.name} holds one model per band; training starts from a "
                        "single shared model")
    src = ckpt.load_model()
    if src.normalisation == "batch":
        model.load_state_dict(src.state_dict())
    elif src.normalisation == "reference":
        # Reference normalisation is batch norm with gamma 1, beta 0 and the batch's
        # moments: the convolutions carry over, the new batch norm starts there.
        missing, unexpected = model.load_state_dict(src.state_dict(), strict=False)
        assert not unexpected and all(".bn." in k for k in missing)
    else:
        raise PmgiError(f"checkpoint {ckpt.name} has no normalisation layers; a batch-normalised "
                        "network cannot start from it")
    return model, {"kind": "checkpoint", "checkpoint": ckpt.name, "label": ckpt.label,
                   "normalisation": ckpt.normalisation, "sha256": ckpt.sha256()}


# -- data ------------------------------------------------------------------------

def _series_and_slice(name: str) -> tuple[str, int | None]:
    """Split a medical pair name into its series and slice number: the Harvard atlas
    names ``<modality>_hv<subject><3-digit slice>``, others ``<series><slice>``."""
    m = re.fullmatch(r"(.*?)(\d+)", name)
    if not m:
        return name, None
    prefix, digits = m.groups()
    if len(digits) > 3:
        return prefix + digits[:-3], int(digits[-3:])
    return prefix, int(digits)


def pair_weights(task: str, names: list[str]) -> tuple[np.ndarray, str]:
    """Sampling weight of each training pair, and what the rule is.

    Every pair counts alike, except medical: its pairs are mostly adjacent slices of
    a few subjects, so a pair is weighted 1 / (number of slices of its series within
    +-2 slice numbers, itself included). A long run of adjacent slices then counts
    about as much as every fifth slice, and an isolated slice counts fully.
    """
    if get_task(task).name != "medical":
        return np.ones(len(names)), "uniform over pairs"
    parsed = [_series_and_slice(n) for n in names]
    weights = np.empty(len(names))
    for i, (series, number) in enumerate(parsed):
        if number is None:
            weights[i] = 1.0
            continue
        near = sum(1 for s, k in parsed
                   if s == series and k is not None and abs(k - number) <= SLICE_NEIGHBOURHOOD)
        weights[i] = 1.0 / near
    return weights, (f"medical: each pair weighted 1/(slices of its series within "
                     f"+-{SLICE_NEIGHBOURHOOD}, itself included); series = pair name without its "
                     "slice number (last 3 digits of hvNNNNN names, else the trailing number)")


@dataclass
class TrainingPair:
    """Gray network inputs of one pair (or one MS band of a pan-sharpening pair),
    float16 in the network range [-1, 1] (error below 0.07 gray levels)."""

    name: str
    band: int | None
    a: np.ndarray
    b: np.ndarray
    weight: float


@dataclass
class TrainingData:
    task: str
    items: list[TrainingPair]
    pairs: list[str]
    sha256: str
    weighting: str
    root: str | None = None
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.items:
            raise PmgiError(f"no usable {self.task} training pairs"
                            + (f" ({', '.join(self.skipped)})" if self.skipped else ""))
        w = np.array([it.weight for it in self.items], np.float64)
        self._p = w / w.sum()

    @classmethod
    def from_inputs(cls, task: str,
                    named_inputs: Iterable[tuple[str, list[tuple[np.ndarray, np.ndarray]]]], *,
                    patch: int, sha256: str = "", root: str | None = None) -> "TrainingData":
        """From (pair name, network_inputs(...)) items; pairs smaller than ``patch``
        are left out and listed in ``skipped``."""
        named_inputs = list(named_inputs)
        names = [n for n, _ in named_inputs]
        weights, rule = pair_weights(task, names)
        items, skipped = [], []
        for (name, inputs), w in zip(named_inputs, weights):
            h, wd = inputs[0][0].shape
            if min(h, wd) < patch:
                skipped.append(f"{name}: {wd}x{h} is smaller than the {patch}x{patch} patch")
                continue
            bands = [None] if len(inputs) == 1 else list(range(1, len(inputs) + 1))
            for band, (x, y) in zip(bands, inputs):
                items.append(TrainingPair(
                    name, band,
                    to_network(torch.from_numpy(np.asarray(x, np.float32))).numpy().astype(np.float16),
                    to_network(torch.from_numpy(np.asarray(y, np.float32))).numpy().astype(np.float16),
                    float(w) / len(inputs)))
        return cls(task, items, sorted({it.name for it in items}), sha256, rule, root, skipped)

    def only_band(self, band: int) -> "TrainingData":
        """The same data restricted to MS band ``band`` (a per-band network's data)."""
        items = [it for it in self.items if it.band == band]
        if not items:
            raise PmgiError(f"no training pair has a band {band}")
        return TrainingData(self.task, items, sorted({it.name for it in items}), self.sha256,
                            self.weighting, self.root, list(self.skipped))

    @property
    def probabilities(self) -> np.ndarray:
        return self._p

    def sample(self, rng: np.random.Generator, batch: int, patch: int,
               flips: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``batch`` co-located patch pairs, each N x 1 x patch x patch float32:
        a pair drawn by weight, a uniform position, and random mirror flips."""
        out_a = np.empty((batch, 1, patch, patch), np.float32)
        out_b = np.empty((batch, 1, patch, patch), np.float32)
        for n, i in enumerate(rng.choice(len(self.items), size=batch, p=self._p)):
            item = self.items[i]
            h, w = item.a.shape
            y = int(rng.integers(0, h - patch + 1))
            x = int(rng.integers(0, w - patch + 1))
            pa, pb = item.a[y:y + patch, x:x + patch], item.b[y:y + patch, x:x + patch]
            if flips:
                horizontal, vertical = rng.integers(0, 2, size=2)
                if horizontal:
                    pa, pb = pa[:, ::-1], pb[:, ::-1]
                if vertical:
                    pa, pb = pa[::-1], pb[::-1]
            out_a[n, 0], out_b[n, 0] = pa, pb
        return out_a, out_b

    def describe(self) -> dict:
        # Weights are 1 per pair, or 1/(near slices) for medical: their sum counts
        # the pairs that are not near-duplicates of each other.
        effective = sum(it.weight for it in self.items)
        return {
            "root": self.root,
            "pairs": self.pairs,
            "pair_count": len(self.pairs),
            "sha256": self.sha256,
            "sha256_of": "each pair folder in name order: '<pair>/<file>\\n' then the file's bytes, "
                         "source A before source B",
            "gray_inputs": "pmgi_gui.core.tasks.network_inputs (the inference pipeline's)",
            "weighting": self.weighting,
            "effective_pairs": round(effective, 1),
            "skipped": self.skipped,
        }


def _pair_files(task: str, folder: Path) -> tuple[Path, Path] | None:
    t = get_task(task)
    found = []
    for stem in (t.stem_a, t.stem_b):
        files = sorted(p for p in folder.glob(f"{stem}.*") if p.is_file())
        if len(files) > 1:
            raise PmgiError(f"{folder} holds more than one {stem} image: "
                            f"{', '.join(p.name for p in files)}")
        if not files:
            return None
        found.append(files[0])
    return found[0], found[1]


def _pair_folders(task: str, root: Path) -> list[tuple[Path, tuple[Path, Path]]]:
    return [(d, files) for d in sorted(p for p in root.iterdir() if p.is_dir())
            if (files := _pair_files(task, d)) is not None]


def _pixel_digest(pixels: np.ndarray) -> str:
    return hashlib.sha256(f"{pixels.dtype}{pixels.shape}".encode() + pixels.tobytes()).hexdigest()


def held_out_digests(task: str, folder: str | os.PathLike) -> set[str]:
    """Pixel digests of every source image of the pairs in ``folder`` (evaluation
    pairs that training must not see, whatever their file names or formats)."""
    from .evaluation import find_pairs
    from .imageio import read_image

    return {_pixel_digest(read_image(p)) for pair in find_pairs(task, folder) for p in (pair.a, pair.b)}


def load_training_data(task: str, root: str | os.PathLike, *, patch: int | None = None,
                       options: PipelineOptions | None = None,
                       progress: Callable[[int, int], None] | None = None,
                       exclude: set[str] | None = None) -> TrainingData:
    """Read every pair of ``root`` (``root/<pair>/<stem_a>.*`` + ``<stem_b>.*``, or a
    folder holding ``<task>/`` laid out so) once, through the task's network inputs.

    A pair either of whose images has its pixels in ``exclude`` (see
    :func:`held_out_digests`) is left out and listed in ``skipped``."""
    from .imageio import read_image

    t = get_task(task)
    root = Path(root)
    if not root.is_dir():
        raise PmgiError(f"training data folder not found: {root}")
    folders = _pair_folders(task, root)
    if not folders and (root / t.name).is_dir():
        root = root / t.name
        folders = _pair_folders(task, root)
    if not folders:
        raise PmgiError(f"no {t.name} training pairs in {root}: expected folders each holding "
                        f"{t.stem_a}.* and {t.stem_b}.*")
    patch = patch or default_patch(task)
    digest = hashlib.sha256()
    named, held_out = [], []
    for n, (folder, files) in enumerate(folders):
        try:
            a, b = read_image(files[0]), read_image(files[1])
            if exclude and (_pixel_digest(a) in exclude or _pixel_digest(b) in exclude):
                held_out.append(f"{folder.name}: held out for evaluation")
                continue
            for path in files:
                digest.update(f"{folder.name}/{path.name}\n".encode())
                digest.update(path.read_bytes())
            named.append((folder.name, network_inputs(task, a, b, options)))
        except PmgiError as exc:
            raise PmgiError(f"training pair {folder.name}: {exc}") from None
        if progress is not None:
            progress(n + 1, len(folders))
    data = TrainingData.from_inputs(task, named, patch=patch, sha256=digest.hexdigest(),
                                    root=str(root))
    data.skipped[:0] = held_out
    return data


# -- batch norm statistics from whole images ----------------------------------------

BN_STATS = ("patches", "images")


def recalibrate_batch_norm(model: PMGI, data: TrainingData) -> dict:
    """Re-estimate batch norm's running statistics from whole training images.

    Training keeps running averages of the moments of 120x120 (or 60x60) patches,
    but inference normalises whole images with them; a medical slice or an exposure
    pair whole has other moments than its patches (black borders, large flat regions).
    Here every training image (each MS band with PAN) runs forward once in training
    mode with a cumulative average (momentum None): each image counts the same. The
    weights are untouched. Measured effect: weights/README.md.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        raise PmgiError("the network has no batch normalisation to recalibrate")
    device = next(model.parameters()).device
    saved = [m.momentum for m in bns]
    was_training = model.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        with torch.no_grad():
            for it in data.items:
                a = torch.from_numpy(it.a.astype(np.float32))[None, None].to(device)
                b = torch.from_numpy(it.b.astype(np.float32))[None, None].to(device)
                model(a, b)
    finally:
        for m, momentum in zip(bns, saved):
            m.momentum = momentum
        model.train(was_training)
    return {"from": "whole training images", "images": len(data.items),
            "rule": "one forward pass each in training mode, cumulative average of the "
                    "moments (each image weighs the same)"}


def recalibrate_checkpoint(checkpoint: Checkpoint | str | os.PathLike, task: str,
                           data: str | os.PathLike | TrainingData, output: str | os.PathLike, *,
                           exclude: str | os.PathLike | None = None,
                           eval_data: str | os.PathLike | None = None,
                           overwrite: bool = False) -> Checkpoint:
    """A copy of a batch-norm checkpoint with its statistics re-estimated on whole
    training images (:func:`recalibrate_batch_norm`); per-band models each on their band."""
    t = get_task(task)
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else find_checkpoint(checkpoint, t.name)
    if ckpt.task != t.name:
        raise CheckpointError(f"checkpoint {ckpt.name} was made for task {ckpt.task}, not {t.name}")
    if ckpt.normalisation != "batch":
        raise PmgiError(f"checkpoint {ckpt.name} has {ckpt.normalisation} normalisation: only "
                        "batch norm keeps statistics to recalibrate")
    out = Path(output)
    if out.resolve() == ckpt.path.resolve():
        raise PmgiError("write the recalibrated checkpoint to a new folder, not over its source")
    if (out / "manifest.json").exists() and not overwrite:
        raise PmgiError(f"{out} already holds a checkpoint; pass --overwrite to replace it")
    if not isinstance(data, TrainingData):
        held_out = held_out_digests(t.name, exclude) if exclude else None
        # Whole images: no pair is too small for a patch here.
        data = load_training_data(t.name, data, patch=3, exclude=held_out)
    models, info = {}, {}
    for key in ckpt.models:
        band = int(key[4:]) if key.startswith("band") else None
        model = ckpt.load_model(band)
        info = recalibrate_batch_norm(model, data.only_band(band) if band else data)
        models[key] = model.eval()
    info = {**info, "data": data.describe(), "source": {"checkpoint": ckpt.name,
                                                        "sha256": ckpt.sha256()}}
    extra = dict(ckpt.extra)
    extra.pop("metrics", None)
    if eval_data and DEFAULT_MODEL in models:
        extra["metrics"] = evaluate_model(models[DEFAULT_MODEL], t.name, eval_data)
    extra["batch_norm_recalibrated"] = info
    return save_checkpoint(out, models, task=t.name, lambdas=ckpt.lambdas,
                           label=f"{ckpt.label}, batch norm statistics of whole images",
                           provenance={**ckpt.provenance, "recalibrated": datetime.now(
                               timezone.utc).isoformat(timespec="seconds")},
                           extra=extra)


# -- trainer ---------------------------------------------------------------------

@dataclass
class TrainConfig:
    task: str
    lambdas: Lambdas
    steps: int = 300
    batch: int = 32
    patch: int = 120
    lr: float = 1e-3
    schedule: str = "cosine"
    lr_min: float = 1e-5
    seed: int = 0
    flips: bool = True
    band: int | None = None  # pan-sharpening: train the model of this MS band only
    bn_stats: str = "patches"  # "images": batch norm statistics re-estimated on whole images

    def validate(self) -> "TrainConfig":
        get_task(self.task)
        if self.band is not None and (self.task != "pan-sharpening" or not 1 <= self.band <= 99):
            raise PmgiError("a per-band model is a pan-sharpening model of band 1..99")
        check_lambdas(self.lambdas)
        for name, low in (("steps", 1), ("batch", 1), ("patch", 3)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise PmgiError(f"{name} must be a whole number of at least {low}, got {value!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise PmgiError(f"the learning rate must be above zero, got {self.lr}")
        if not (math.isfinite(self.lr_min) and 0 <= self.lr_min <= self.lr):
            raise PmgiError(f"the final learning rate must lie between 0 and {self.lr}, got {self.lr_min}")
        if self.bn_stats not in BN_STATS:
            raise PmgiError(f"bn_stats is one of {', '.join(BN_STATS)}, got {self.bn_stats!r}")
        if self.schedule not in SCHEDULES:
            raise PmgiError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        return self

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based)."""
        if self.schedule == "cosine":
            cos = math.cos(math.pi * step / self.steps)
            return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + cos)
        if self.schedule == "step":
            return self.lr if step < (2 * self.steps) // 3 else self.lr * 0.1
        return self.lr

    def schedule_dict(self) -> dict:
        d = {"kind": self.schedule, "lr": self.lr, "steps": self.steps, "optimizer":
             "Adam (betas 0.9, 0.999; eps 1e-8)"}
        if self.schedule == "cosine":
            d["lr_min"] = self.lr_min
            d["rule"] = "lr_min + (lr - lr_min) * (1 + cos(pi * step / steps)) / 2"
        elif self.schedule == "step":
            d["rule"] = "lr, times 0.1 from step 2*steps//3"
        return d

    def as_dict(self) -> dict:
        d = asdict(self)
        d["lambdas"] = self.lambdas.as_dict()
        return d


@dataclass
class TrainResult:
    checkpoint: Checkpoint
    steps: int
    seconds: float
    final_loss: float
    loss_csv: Path
    state_path: Path
    metrics: dict | None = None


def state_path_for(output: str | os.PathLike, band: int | None = None) -> Path:
    """The resumable state of a training run, beside its output folder."""
    out = Path(output)
    return out.with_name(out.name + (f".band{band}" if band else "") + ".train-state.pt")


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def training_device(preference: str = "auto") -> torch.device:
    """CUDA when present, else the CPU; an explicit choice as the engine takes it."""
    from .engine import choose_device

    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return choose_device(preference)


@contextlib.contextmanager
def _training_context(threads: int | None, device: torch.device):
    """Deterministic kernels and the thread count for the run, restored afterwards
    (the GUI process goes on running inference)."""
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_threads = torch.get_num_threads()
    prev_bench = torch.backends.cudnn.benchmark
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.set_num_threads(threads or available_cores())
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        torch.backends.cudnn.benchmark = prev_bench
        torch.set_num_threads(prev_threads)


# channels_last: oneDNN's convolutions run forward and backward about 1.7x faster on
# the 2-core CPU in that layout (batch 32, 120x120 patches: 1.2 s a step against 2.0 s).
TRAIN_LAYOUT = torch.channels_last


def _step(model: PMGI, optimiser: torch.optim.Optimizer, a: torch.Tensor, b: torch.Tensor,
          lambdas: Lambdas) -> tuple[float, dict[str, float]]:
    a = a.contiguous(memory_format=TRAIN_LAYOUT)
    b = b.contiguous(memory_format=TRAIN_LAYOUT)
    f = model(a, b)
    terms = loss_terms(f, a, b)
    loss = weighted_loss(terms, lambdas)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return float(loss.detach()), {k: float(v.detach()) for k, v in terms.items()}


def _describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({torch.get_num_threads()} threads)"


class Trainer:
    """One training run: ``Trainer(config, data, output).run(progress=..., cancel=...)``.

    Writes ``output/loss.csv`` as it goes, a resumable state file beside the output
    (:func:`state_path_for`) every ``save_every`` steps and when cancelled, and at
    the end the checkpoint folder ``output`` (batch normalisation), which replaces
    the state file.
    """

    def __init__(self, config: TrainConfig, data: TrainingData, output: str | os.PathLike, *,
                 init: Checkpoint | str | os.PathLike | None = None, label: str | None = None,
                 device: str = "auto", threads: int | None = None, save_every: int = 25,
                 eval_data: str | os.PathLike | None = None):
        self.config = config.validate()
        if data.task != config.task:
            raise PmgiError(f"the training data is for {data.task}, not {config.task}")
        band = config.band
        self.data = data.only_band(band) if band else data
        self.model_key = f"band{band}" if band else DEFAULT_MODEL
        self.output = Path(output)
        self.state_path = state_path_for(self.output, band)
        self.csv_path = self.output / (f"loss-band{band}.csv" if band else LOSS_CSV)
        self.init = init
        self.label = label
        self.device = training_device(device)
        self.threads = threads
        self.save_every = max(1, int(save_every))
        self.eval_data = eval_data

    # -- state -------------------------------------------------------------------
    def _save_state(self, step, model, optimiser, rng, seconds, init_info, resumed_at):
        state = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "step": step,
            "config": self.config.as_dict(),
            "data_sha256": self.data.sha256,
            "model": model.state_dict(),
            "optimizer": optimiser.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "numpy_rng": rng.bit_generator.state,
            "seconds": seconds,
            "init": init_info,
            "resumed_at": resumed_at,
        }
        buf = io.BytesIO()
        torch.save(state, buf)
        blob = buf.getvalue()
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.state_path, lambda fh: fh.write(blob))

    def _load_state(self) -> dict:
        if not self.state_path.is_file():
            raise PmgiError(f"nothing to resume: no training state at {self.state_path}")
        try:
            # weights_only: a state file cannot run code when it is read.
            state = torch.load(self.state_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for bad files
            raise PmgiError(f"cannot read the training state {self.state_path} ({exc})") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT \
                or state.get("version") != STATE_VERSION:
            raise PmgiError(f"{self.state_path} is not a training state this program can resume")
        # A state saved before an option existed was trained with its default.
        defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
        old, new = {**defaults, **state["config"]}, self.config.as_dict()
        old.pop("steps"), new.pop("steps")
        differ = [k for k in new if old.get(k) != new[k]]
        if state["data_sha256"] != self.data.sha256:
            differ.append("data")
        if differ:
            raise PmgiError(f"cannot resume {self.state_path}: {', '.join(differ)} differ from the "
                            "interrupted run")
        if state["step"] > self.config.steps:
            raise PmgiError(f"the interrupted run is already at step {state['step']}, beyond "
                            f"--steps {self.config.steps}")
        return state

    # -- run ---------------------------------------------------------------------
    def run(self, *, resume: bool = False, overwrite: bool = False,
            progress: TrainProgress | None = None, cancel: Cancel | None = None) -> TrainResult:
        cfg = self.config
        if not resume:
            if self._output_holds_model() and not overwrite:
                raise PmgiError(f"{self.output} already holds a checkpoint; pass --overwrite to replace it")
            if self.state_path.exists() and not overwrite:
                raise PmgiError(f"an interrupted training run is saved in {self.state_path}: pass "
                                "--resume to continue it or --overwrite to start again")
        with _training_context(self.threads, self.device):
            torch.manual_seed(cfg.seed)
            rng = np.random.default_rng(cfg.seed)
            resumed_at: list[int] = []
            if resume:
                state = self._load_state()
                model = PMGI("batch")
                model.load_state_dict(state["model"])
                init_info = state["init"]
                step, seconds_before = int(state["step"]), float(state["seconds"])
                resumed_at = list(state["resumed_at"]) + [step]
            else:
                model, init_info = _initial_model(self.init, cfg.task, cfg.seed)
                step, seconds_before = 0, 0.0
            model.to(self.device, memory_format=TRAIN_LAYOUT).train()
            optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
            if resume:
                optimiser.load_state_dict(state["optimizer"])
                torch.set_rng_state(state["torch_rng"])
                if self.device.type == "cuda" and state["cuda_rng"]:
                    torch.cuda.set_rng_state_all(state["cuda_rng"])
                rng.bit_generator.state = state["numpy_rng"]
            csv_file, rows = self._open_csv(step, resume)
            started = time.perf_counter()
            seconds = lambda: seconds_before + time.perf_counter() - started  # noqa: E731
            save = lambda: self._save_state(step, model, optimiser, rng, seconds(),  # noqa: E731
                                            init_info, resumed_at)
            losses = []
            try:
                while step < cfg.steps:
                    if cancel is not None and cancel():
                        save()
                        raise Cancelled(f"training stopped at step {step} of {cfg.steps}; its state "
                                        f"is saved in {self.state_path} (resume to continue)")
                    tic = time.perf_counter()
                    lr = cfg.lr_at(step)
                    for group in optimiser.param_groups:
                        group["lr"] = lr
                    a, b = self.data.sample(rng, cfg.batch, cfg.patch, cfg.flips)
                    loss, terms = _step(model, optimiser, torch.from_numpy(a).to(self.device),
                                        torch.from_numpy(b).to(self.device), cfg.lambdas)
                    if not math.isfinite(loss):
                        raise PmgiError(f"the loss became {loss} at step {step + 1}; try a smaller "
                                        "learning rate")
                    step += 1
                    losses.append(loss)
                    rows.writerow([step, f"{loss:.6g}", *(f"{terms[k]:.6g}" for k in TERMS),
                                   f"{lr:.6g}", f"{seconds():.2f}"])
                    csv_file.flush()
                    if progress is not None:
                        progress(step, cfg.steps, loss, cfg.batch / (time.perf_counter() - tic))
                    if step % self.save_every == 0 or step == cfg.steps:
                        save()
            finally:
                csv_file.close()
            model.to(memory_format=torch.contiguous_format)
            bn_stats = {"from": "training patches", "rule": "running averages, momentum 0.1"}
            if cfg.bn_stats == "images":
                bn_stats = recalibrate_batch_norm(model, self.data)
            total_seconds = seconds()
            model.eval()
            final = self._final_loss(losses)
            metrics = None
            if self.eval_data:
                try:
                    metrics = evaluate_model(model, cfg.task, self.eval_data)
                except Exception as exc:  # a scoring failure must not lose the trained model
                    metrics = {"error": f"{type(exc).__name__}: {exc}"}
            ckpt = save_checkpoint(
                self.output, {self.model_key: model.cpu()}, task=cfg.task, lambdas=cfg.lambdas,
                merge=cfg.band is not None,
                label=self.label or f"trained, {cfg.steps} steps",
                provenance={"source": "trained with pmgi train",
                            "trained": datetime.now(timezone.utc).isoformat(timespec="seconds")},
                extra={self.training_key: {
                    "data": self.data.describe(),
                    "steps": cfg.steps,
                    "batch": cfg.batch,
                    "patch": cfg.patch,
                    "flips": cfg.flips,
                    "seed": cfg.seed,
                    "lr_schedule": cfg.schedule_dict(),
                    "init": init_info,
                    "seconds": round(total_seconds, 1),
                    "device": _describe_device(self.device),
                    "resumed_at": resumed_at,
                    "loss": final,
                    "loss_csv": self.csv_path.name,
                    "inference": "batch norm's running statistics (folded into the convolutions)",
                    "batch_norm_statistics": bn_stats,
                    "torch": torch.__version__,
                }, **({"metrics": metrics} if metrics else {})})
        # The run is complete: its checkpoint replaces the resumable state.
        self.state_path.unlink(missing_ok=True)
        return TrainResult(ckpt, cfg.steps, total_seconds, final.get("final", float("nan")),
                           self.csv_path, self.state_path, metrics)

    @property
    def training_key(self) -> str:
        """The manifest entry describing this run (one per band for per-band models)."""
        return "training" if self.config.band is None else f"training_band{self.config.band}"

    def _output_holds_model(self) -> bool:
        if not (self.output / "manifest.json").exists():
            return False
        if self.config.band is None:
            return True
        try:  # per-band runs gather into one folder: only this band's model counts
            return self.model_key in load_checkpoint(self.output).models
        except CheckpointError:
            return True

    def _final_loss(self, losses: list[float]) -> dict:
        """The last loss and the mean of the last ten, from the CSV (which spans a resume)."""
        with open(self.csv_path, newline="") as fh:
            values = [float(r["loss"]) for r in csv.DictReader(fh)]
        values = values or losses
        if not values:
            return {}
        tail = values[-10:]
        return {"final": values[-1], f"mean_last_{len(tail)}": sum(tail) / len(tail),
                "first": values[0]}

    def _open_csv(self, step: int, resume: bool):
        """The loss CSV for appending; on resume, rows after the saved step are dropped
        (they were trained again from the saved state)."""
        self.output.mkdir(parents=True, exist_ok=True)
        header = ["step", "loss", *TERMS, "lr", "seconds"]
        kept = []
        if resume and self.csv_path.is_file():
            with open(self.csv_path, newline="") as fh:
                kept = [r for r in csv.reader(fh)][1:]
            kept = [r for r in kept if r and int(r[0]) <= step]
        fh = open(self.csv_path, "w", newline="")
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(kept)
        return fh, writer


def train(task: str, data: str | os.PathLike | TrainingData, output: str | os.PathLike, *,
          lambdas: Lambdas | None = None, steps: int = 300, batch: int = 32,
          patch: int | None = None, lr: float = 1e-3, schedule: str = "cosine",
          lr_min: float = 1e-5, seed: int = 0, flips: bool = True,
          init: Checkpoint | str | os.PathLike | None = None, resume: bool = False,
          overwrite: bool = False, label: str | None = None, device: str = "auto",
          threads: int | None = None, save_every: int = 25,
          eval_data: str | os.PathLike | None = None, options: PipelineOptions | None = None,
          progress: TrainProgress | None = None, cancel: Cancel | None = None,
          exclude: str | os.PathLike | None = None, band: int | None = None,
          bn_stats: str = "patches") -> TrainResult:
    """Train a batch-normalised PMGI checkpoint for ``task`` on a folder of pairs.

    ``lambdas`` default to the paper's for the task. ``progress(step, total, loss,
    patches_per_second)`` is called after each step; ``cancel()`` is checked before
    each, and a cancelled run saves its state and raises :class:`Cancelled`; call
    again with ``resume=True`` to continue it. ``band`` (pan-sharpening) trains the
    model of that MS band only and adds it to ``output`` as ``bandK`` (the authors'
    one-network-per-band layout).
    """
    t = get_task(task)
    patch = patch or default_patch(t.name)
    config = TrainConfig(t.name, lambdas or t.lambdas, steps, batch, patch, lr, schedule, lr_min,
                         seed, flips, band, bn_stats).validate()
    if band is not None and eval_data:
        raise PmgiError("a per-band run trains one band's model: evaluate the gathered checkpoint "
                        "with pmgi evaluate once every band is trained")
    if not isinstance(data, TrainingData):
        held_out = held_out_digests(t.name, exclude) if exclude else None
        data = load_training_data(t.name, data, patch=patch, options=options, exclude=held_out)
    trainer = Trainer(config, data, output, init=init, label=label, device=device, threads=threads,
                      save_every=save_every, eval_data=eval_data)
    return trainer.run(resume=resume, overwrite=overwrite, progress=progress, cancel=cancel)


# -- fine-tuning on one pair -----------------------------------------------------

def fine_tune(checkpoint: Checkpoint | str | os.PathLike, a: np.ndarray, b: np.ndarray, task: str,
              lambdas: Lambdas, steps: int = 100, progress: TrainProgress | None = None,
              cancel: Cancel | None = None, *, batch: int = 8, patch: int | None = None,
              lr: float = 1e-4, seed: int = 0, options: PipelineOptions | None = None,
              device: str = "auto", threads: int | None = None) -> tuple[PMGI, dict]:
    """Fine-tune ``checkpoint`` on one pair of sources (as read) with new loss weights.

    Random patches of the pair (the whole image if it is smaller than the patch),
    Adam at a constant ``lr``, the checkpoint's own normalisation kept; a batch-norm
    model is tuned with its running statistics frozen (inference's function). Returns the
    model in eval mode on the CPU and a description for :func:`save_fine_tuned`.
    ``cancel()`` is checked before each step and raises :class:`Cancelled`.
    """
    t = get_task(task)
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else find_checkpoint(checkpoint, t.name)
    if ckpt.task != t.name:
        raise CheckpointError(f"checkpoint {ckpt.name} was made for task {ckpt.task}, not {t.name}")
    if DEFAULT_MODEL not in ckpt.models:
        raise PmgiError(f"checkpoint {ckpt.name} holds one model per band; fine-tuning needs a "
                        "single shared model (train one with pmgi train)")
    check_lambdas(lambdas)
    inputs = network_inputs(t.name, a, b, options)
    h, w = inputs[0][0].shape
    patch = min(patch or default_patch(t.name), h, w)
    config = TrainConfig(t.name, lambdas, steps, batch, patch, lr, "constant", 0.0, seed).validate()
    digest = hashlib.sha256()
    for x, y in inputs:
        digest.update(np.ascontiguousarray(x, np.float32).tobytes())
        digest.update(np.ascontiguousarray(y, np.float32).tobytes())
    data = TrainingData.from_inputs(t.name, [("pair", inputs)], patch=patch, sha256=digest.hexdigest())
    dev = training_device(device)
    losses = []
    with _training_context(threads, dev):
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        # Batch norm stays in eval mode: its running statistics are frozen, so the
        # function being tuned is the one inference runs (batch statistics of a few
        # patches of one image would pull the running averages off).
        model = ckpt.load_model().to(dev, memory_format=TRAIN_LAYOUT).eval()
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        started = time.perf_counter()
        for step in range(steps):
            if cancel is not None and cancel():
                raise Cancelled(f"fine-tuning cancelled at step {step} of {steps}")
            tic = time.perf_counter()
            pa, pb = data.sample(rng, batch, patch)
            loss, _ = _step(model, optimiser, torch.from_numpy(pa).to(dev), torch.from_numpy(pb).to(dev),
                            lambdas)
            if not math.isfinite(loss):
                raise PmgiError(f"the loss became {loss} at step {step + 1}; try a smaller learning rate")
            losses.append(loss)
            if progress is not None:
                progress(step + 1, steps, loss, batch / (time.perf_counter() - tic))
        seconds = time.perf_counter() - started
        device_text = _describe_device(dev)
    model = model.cpu().to(memory_format=torch.contiguous_format).eval()
    info = {
        "task": t.name,
        "base": {"checkpoint": ckpt.name, "label": ckpt.label, "sha256": ckpt.sha256(),
                 "lambdas": ckpt.lambdas.as_dict()},
        "lambdas": lambdas.as_dict(),
        "pair_sha256": digest.hexdigest(),
        "pair_sha256_of": "float32 bytes of the network inputs A, B",
        "size": [w, h],
        "steps": steps,
        "batch": batch,
        "patch": patch,
        "lr": lr,
        "seed": seed,
        "batch_norm": "running statistics frozen" if ckpt.normalisation == "batch" else None,
        "seconds": round(seconds, 2),
        "device": device_text,
        "loss": {"first": losses[0], "final": losses[-1]} if losses else {},
    }
    return model, info


def save_fine_tuned(model: PMGI, info: dict, *, name: str | None = None,
                    out_dir: str | os.PathLike | None = None, label: str | None = None,
                    overwrite: bool = False) -> Checkpoint:
    """Save a :func:`fine_tune` result as a checkpoint: in ``out_dir``, or as a user
    checkpoint ``name`` (user data folder ``checkpoints/<task>/<name>``)."""
    from ..paths import user_checkpoints_dir

    task = info["task"]
    if out_dir is None:
        name = name or f"{info['base']['checkpoint']}-tuned-{datetime.now():%Y%m%d-%H%M%S}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
            raise PmgiError(f"a checkpoint name uses letters, digits, '_', '.' and '-', got {name!r}")
        out_dir = user_checkpoints_dir() / task / name
    out = Path(out_dir)
    if (out / "manifest.json").exists() and not overwrite:
        raise PmgiError(f"{out} already holds a checkpoint; pass --overwrite to replace it")
    lambdas = Lambdas.from_dict(info["lambdas"])
    return save_checkpoint(
        out, {DEFAULT_MODEL: model}, task=task, lambdas=lambdas,
        label=label or f"{info['base']['label']}, fine-tuned ({lambdas.describe(get_task(task))})",
        provenance={"source": "fine-tuned on one pair with pmgi",
                    "trained": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        extra={"fine_tune": info})


# -- evaluation of a trained model -----------------------------------------------

def evaluate_model(model: PMGI, task: str, data_dir: str | os.PathLike) -> dict | None:
    """Mean of the task's metrics over the pairs of ``data_dir``, scored as
    ``pmgi evaluate`` scores (the full pipeline, ``evaluation.score``; for
    pan-sharpening the full-resolution metrics)."""
    from .engine import fuse_gray
    from .evaluation import find_pairs, score
    from .imageio import read_image
    from .tasks import fuse_pair

    t = get_task(task)
    folded = model.fold() if model.normalisation == "batch" else model

    def gray(x, y, band):
        return fuse_gray(folded, x, y) * 127.5 + 127.5

    sums: dict[str, float] = {}
    scored = []
    for pair in find_pairs(t.name, data_dir):
        a, b = read_image(pair.a), read_image(pair.b)
        values = score(t.name, a, b, fuse_pair(t.name, a, b, gray_fuse=gray))
        scored.append(pair.name)
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + float(v)
    return {"data": str(data_dir), "pairs": scored,
            "scoring": "as pmgi evaluate: full pipeline, 8-bit luma (pan-sharpening: full resolution)",
            "mean": {k: v / len(scored) for k, v in sums.items()}}
