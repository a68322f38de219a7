"""Evaluation: fuse every pair of a folder with PMGI and the classical baselines,
score each result with the task's metrics, and write per-pair and mean rows.

Metrics of the gray tasks are computed on 8-bit gray images, as the benchmarks
read them: the luma (BT.601, rounded) of colour sources and results. For medical
that is the luma of the PET colour image and of the fused colour image.

Pan-sharpening is scored twice: at full resolution without a reference (QNR,
D_lambda, D_s), and under the Wald protocol (MS and PAN degraded by 4, fused,
compared with the original MS: SAM, ERGAS, Q2n).
"""

from __future__ import annotations

import csv
import json
import math
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from . import imageio
from .errors import PmgiError
from .tasks import get_task

__all__ = ["PairFiles", "find_pairs", "gray_for_metrics", "score", "Method", "evaluate",
           "Report", "write_report", "format_table"]


@dataclass(frozen=True)
class PairFiles:
    name: str
    a: Path
    b: Path


def _find_role(folder: Path, stem: str) -> Path | None:
    hits = sorted(p for p in folder.glob(f"{stem}.*") if p.is_file())
    return hits[0] if hits else None


def find_pairs(task: str, folder: str | Path) -> list[PairFiles]:
    """Pairs in ``folder``: sub-folders each holding the task's two role files
    (e.g. ``ir.png`` + ``vis.png``), or the folder itself holding them."""
    t = get_task(task)
    folder = Path(folder)
    if not folder.is_dir():
        raise PmgiError(f"not a folder: {folder}")
    candidates = [folder] + sorted(p for p in folder.iterdir() if p.is_dir())
    pairs = []
    for c in candidates:
        a, b = _find_role(c, t.stem_a), _find_role(c, t.stem_b)
        if a and b:
            pairs.append(PairFiles(c.name, a, b))
    if not pairs:
        raise PmgiError(f"no {t.title} pairs in {folder}: expected sub-folders holding "
                        f"{t.stem_a}.* and {t.stem_b}.*")
    return pairs


def gray_for_metrics(x: np.ndarray) -> np.ndarray:
    """8-bit gray as the benchmarks read images: rounded luma of colour."""
    from .colour import as_unit255

    if x.ndim == 3:
        x = imageio.to_gray(as_unit255(x[..., :3])) if x.shape[2] >= 3 else x[..., 0]
    x = as_unit255(x) if x.dtype != np.uint8 else x
    return np.clip(np.floor(np.asarray(x, np.float64) + 0.5), 0, 255).astype(np.uint8)


def score(task: str, a: np.ndarray, b: np.ndarray, fused: np.ndarray, keys=None, *,
          reference_fused: np.ndarray | None = None, reference: np.ndarray | None = None) -> dict:
    """The task's metrics (or ``keys``) of one result.

    Pan-sharpening: ``a`` = MS, ``b`` = PAN, ``fused`` at full resolution; the
    reference-based metrics need ``reference_fused`` (the fusion of the degraded
    pair) and ``reference`` (the original MS).
    """
    from . import metrics

    keys = tuple(keys or metrics.TASK_METRICS[task])
    if task == "pan-sharpening":
        out = {}
        full = [k for k in keys if metrics.METRICS[k].inputs == "ms_pan_fused"]
        ref = [k for k in keys if metrics.METRICS[k].inputs == "reference_fused"]
        pan = b if b.ndim == 2 else b[..., 0]
        out.update(metrics.compute(full, a.astype(np.float64), pan.astype(np.float64),
                                   fused.astype(np.float64)))
        if ref and reference_fused is not None:
            out.update(metrics.compute(ref, None, None, reference_fused.astype(np.float64),
                                       reference=reference.astype(np.float64)))
        return out
    return metrics.compute(keys, gray_for_metrics(a), gray_for_metrics(b), gray_for_metrics(fused))


def wald_pair(task: str, a: np.ndarray, b: np.ndarray):
    """Pan-sharpening's Wald protocol: (reference MS, (degraded MS, degraded PAN)), the
    MS cropped to whole degraded pixels; None for the other tasks."""
    if task != "pan-sharpening":
        return None
    from .pansharpening_metrics import degrade

    # The MS must be a whole number of degraded pixels, so an MS whose sides are not
    # multiples of 4 is cropped (its PAN with it).
    h, w = (a.shape[0] // 4) * 4, (a.shape[1] // 4) * 4
    reference = a[:h, :w]
    ms_lr, pan_lr = (np.asarray(x).astype(a.dtype) if np.issubdtype(a.dtype, np.integer)
                     else np.asarray(x) for x in degrade(reference, b[:4 * h, :4 * w]))
    return reference, (ms_lr, pan_lr)


def score_run(task: str, a: np.ndarray, b: np.ndarray, run, keys=None, wald=None):
    """Run one method ``run(a, b) -> FusionResult`` on a pair and score it (for
    pan-sharpening also on the Wald pair ``wald`` from :func:`wald_pair`).
    Returns (metric values, the full-resolution result)."""
    result = run(a, b)
    fused_lr = reference = None
    if wald is not None:
        reference, (ms_lr, pan_lr) = wald
        fused_lr = run(ms_lr, pan_lr).pixels
    return score(task, a, b, result.pixels, keys, reference_fused=fused_lr,
                 reference=reference), result


@dataclass
class Method:
    """One column of an evaluation: PMGI with a checkpoint, or a baseline."""

    key: str
    label: str
    run: Callable[[np.ndarray, np.ndarray], "object"]  # (a, b) -> FusionResult
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    fuser: "object | None" = None  # PMGI's PmgiFuser


def _methods(task: str, methods: list[str] | None, checkpoints: list[str] | None,
             device: str) -> list[Method]:
    from .checkpoints import Checkpoint, find_checkpoint, list_checkpoints
    from .fusion import PMGI_METHOD, PmgiFuser, fuse, methods_for

    workspace = None  # one level cache for every checkpoint: they run one after another

    available = [k for k, _ in methods_for(task)]
    wanted = methods or available
    out = []
    for key in wanted:
        if key not in available:
            raise PmgiError(f"unknown method {key!r} for {task}; choose from {', '.join(available)}")
        if key == PMGI_METHOD:
            specs = checkpoints or ([None] if list_checkpoints(task) else [])
            if not specs and methods:
                raise PmgiError(f"no PMGI checkpoint is installed for {task}: pass --checkpoint")
            for spec in specs:
                ckpt = spec if isinstance(spec, Checkpoint) else find_checkpoint(spec, task)
                fuser = PmgiFuser(ckpt, device=device, workspace=workspace)
                workspace = fuser.workspace
                label = f"PMGI[{ckpt.name}]" if (checkpoints and len(checkpoints) > 1) else "PMGI"
                out.append(Method(f"pmgi:{ckpt.name}", label,
                                  lambda a, b, f=fuser: fuse(task, a, b, fuser=f),
                                  ckpt.name, ckpt.sha256(), fuser))
        else:
            name = dict(methods_for(task))[key]
            out.append(Method(key, name, lambda a, b, k=key: fuse(task, a, b, method=k)))
    return out


@dataclass
class Report:
    task: str
    metric_keys: list[str]
    rows: list[dict]  # pair, method, seconds, and one value per metric
    meta: dict = field(default_factory=dict)

    def means(self) -> list[dict]:
        out = []
        for method in dict.fromkeys(r["method"] for r in self.rows):
            rows = [r for r in self.rows if r["method"] == method]
            mean = {"pair": "mean", "method": method}
            for key in self.metric_keys + ["seconds"]:
                vals = [r[key] for r in rows if r.get(key) is not None and math.isfinite(r[key])]
                mean[key] = float(np.mean(vals)) if vals else None
            out.append(mean)
        return out


def evaluate(task: str, folder: str | Path, *, methods: list[str] | None = None,
             checkpoints: list[str] | None = None, device: str = "auto",
             progress: Callable[[int, int, str], None] | None = None) -> Report:
    """Fuse every pair in ``folder`` with each method and score it."""
    from . import metrics
    from .engine import choose_device

    pairs = find_pairs(task, folder)
    cols = _methods(task, methods, checkpoints, device)
    if not cols:
        raise PmgiError(f"nothing to evaluate for {task}")
    keys = list(metrics.TASK_METRICS[task])
    rows = []
    total, done = len(pairs) * len(cols), 0
    for pair in pairs:
        a, b = imageio.read_image(pair.a), imageio.read_image(pair.b)
        wald = wald_pair(task, a, b)
        for m in cols:
            values, result = score_run(task, a, b, m.run, keys, wald)
            rows.append({"pair": pair.name, "method": m.label, "seconds": result.seconds, **values})
            done += 1
            if progress is not None:
                progress(done, total, f"{pair.name} {m.label}")
    meta = {
        "software": f"pmgi-gui {__version__}",
        "task": task,
        "folder": str(folder),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": choose_device(device).type,
        "machine": platform.machine(),
        "methods": {m.label: {"key": m.key, "checkpoint": m.checkpoint,
                              "checkpoint_sha256": m.checkpoint_sha256} for m in cols},
        "metrics": {k: {"name": metrics.METRICS[k].name,
                        "higher_is_better": metrics.METRICS[k].higher_is_better,
                        "convention": metrics.METRICS[k].convention} for k in keys},
        "metric_inputs": ("8-bit luma of sources and result" if task != "pan-sharpening" else
                          "full resolution (QNR, D_lambda, D_s); Wald protocol, ratio 4 "
                          "(SAM, ERGAS, Q2n)"),
    }
    return Report(task, keys, rows, meta)


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_report(report: Report, out: str | Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """``out``.csv and ``out``.json (``out`` without suffix, or with either)."""
    from ._atomic import atomic_write

    out = Path(out)
    stem = out.with_suffix("") if out.suffix.lower() in (".csv", ".json") else out
    csv_path, json_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
    for p in (csv_path, json_path):
        if p.exists() and not overwrite:
            raise PmgiError(f"{p} exists; pass --overwrite to replace it")
    if not csv_path.parent.is_dir():
        raise PmgiError(f"folder does not exist: {csv_path.parent}")
    fields = ["pair", "method"] + report.metric_keys + ["seconds"]
    rows = report.rows + report.means()

    def write_csv(fh):
        import io

        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if _clean(r.get(k)) is None else r.get(k)) for k in fields})
        fh.write(text.getvalue().encode())

    doc = {"meta": report.meta, "metric_keys": report.metric_keys,
           "rows": [{k: _clean(v) for k, v in r.items()} for r in report.rows],
           "mean": [{k: _clean(v) for k, v in r.items()} for r in report.means()]}
    atomic_write(csv_path, write_csv)
    atomic_write(json_path, lambda fh: fh.write((json.dumps(doc, indent=2) + "\n").encode()))
    return csv_path, json_path


def format_table(report: Report, *, means_only: bool = False) -> str:
    """A readable table: one row per pair and method, then the means; the best mean
    of each metric marked with *."""
    from . import metrics

    means = report.means()
    rows = means if means_only else report.rows + means
    best = {}
    for k in report.metric_keys:
        vals = [(m[k], m["method"]) for m in means if m.get(k) is not None]
        if vals:
            hib = metrics.METRICS[k].higher_is_better
            best[k] = (max if hib else min)(vals)[1]
    head = ["pair", "method"] + [f"{k}{'^' if metrics.METRICS[k].higher_is_better else 'v'}"
                                 for k in report.metric_keys] + ["s"]
    lines = [head]
    for r in rows:
        cells = [r["pair"], r["method"]]
        for k in report.metric_keys:
            v = r.get(k)
            mark = "*" if r["pair"] == "mean" and best.get(k) == r["method"] else ""
            cells.append("n/a" if v is None else f"{v:.4f}{mark}")
        cells.append("n/a" if r.get("seconds") is None else f"{r['seconds']:.3f}")
        lines.append(cells)
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([fmt(lines[0]), fmt(["-" * w for w in widths])] + [fmt(c) for c in lines[1:]])
