"""Is linear interpolation of weights between `paper` and its gradient-scaled variants a
smooth, usable family? Measures the task's metrics along the path.

For gradient scales g spaced evenly on a log scale across the family's range (the
members themselves included), fuses every pair of the evaluation folder with the
family's checkpoint at g (core.family: a member, or weights blended linearly
between its neighbours) and scores it as `pmgi evaluate` does. Besides the task's
metrics it reports what the setting is meant to move: texture (AG, SF of the result)
against intensity fidelity (mean squared difference to each source, 8-bit luma), for
every task but pan-sharpening (whose metrics already separate spectral D_lambda
from spatial D_s).

A column is *monotone* when its successive changes along g never go against the
overall trend by more than 2 % of the column's range: a usable slider moves each
measure one way.

    python tools/family_study.py --task ir-vis --data ../shared/data/ir-vis \\
        [--base weights/ir-vis/paper --member DIR ...] [--points 9] [-o study.json]

Without --base/--member the installed family of the task's `paper` checkpoint is used.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np


def measures(task, a, b, fused) -> dict:
    from pmgi_gui.core import metrics
    from pmgi_gui.core.evaluation import gray_for_metrics

    if task == "pan-sharpening":
        return {}
    ga, gb, gf = (gray_for_metrics(x).astype(np.float64) for x in (a, b, fused))
    out = metrics.compute(("AG", "SF"), ga, gb, gf)
    out["MSE_A"] = float(np.mean((gf - ga) ** 2))
    out["MSE_B"] = float(np.mean((gf - gb) ** 2))
    return out


def monotone(values: list[float]) -> tuple[bool, str]:
    v = np.asarray(values, np.float64)
    span = float(v.max() - v.min())
    if span == 0:
        return True, "flat"
    d = np.diff(v)
    trend = np.sign(v[-1] - v[0]) or 1.0
    against = float(np.max(np.maximum(-trend * d, 0.0)))
    return against <= 0.02 * span, ("rises" if trend > 0 else "falls") + \
        f", worst step against the trend {100 * against / span:.1f}% of the range"


def main(argv=None) -> int:
    from pmgi_gui.core import imageio, metrics
    from pmgi_gui.core.checkpoints import find_checkpoint, load_checkpoint
    from pmgi_gui.core.evaluation import find_pairs, score_run, wald_pair
    from pmgi_gui.core.family import family_for
    from pmgi_gui.core.fusion import PmgiFuser, fuse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True)
    p.add_argument("--data", required=True, help="evaluation pairs (as pmgi evaluate)")
    p.add_argument("--base", help="the family's base checkpoint (default: installed paper)")
    p.add_argument("--member", action="append", default=[], help="a variant's folder (repeat)")
    p.add_argument("--points", type=int, default=9, help="gradient scales along the path")
    p.add_argument("--device", default="cpu")
    p.add_argument("-o", "--output", help="write the table as JSON here")
    args = p.parse_args(argv)

    base = load_checkpoint(args.base) if args.base else find_checkpoint(None, args.task)
    pool = [base] + [load_checkpoint(m) for m in args.member] if args.member else None
    family = family_for(base, pool, as_base=True)
    if family is None:
        print(f"{base.name} has no gradient-scaled variants", file=sys.stderr)
        return 2
    lo, hi = family.range
    grid = sorted(set([round(math.exp(x), 6) for x in np.linspace(math.log(lo), math.log(hi),
                                                                  args.points)] + family.scales))
    keys = list(metrics.TASK_METRICS[args.task])
    pairs = [(pr.name, imageio.read_image(pr.a), imageio.read_image(pr.b))
             for pr in find_pairs(args.task, args.data)]
    rows = []
    points = [(g, family.at(g)) for g in grid]
    if all(c.sha256() != base.sha256() for _, c in points):
        points.append((1.0, base))  # the base, off the path: for comparison only
    for g, ckpt in points:
        fuser = PmgiFuser(ckpt, device=args.device)
        run = lambda a, b: fuse(args.task, a, b, fuser=fuser)  # noqa: E731
        sums: dict[str, float] = {}
        for _, a, b in pairs:
            values, result = score_run(args.task, a, b, run, keys, wald_pair(args.task, a, b))
            values.update(measures(args.task, a, b, result.pixels))
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        row = {"g": g, "checkpoint": ckpt.name,
               **{k: v / len(pairs) for k, v in sums.items()}}
        rows.append(row)
        print(f"g={g:.3f} {ckpt.name}: " + ", ".join(f"{k} {row[k]:.4g}" for k in sums), flush=True)

    cols = [k for k in rows[0] if k not in ("g", "checkpoint")]
    path = rows[:len(grid)]
    summary = {k: monotone([r[k] for r in path]) for k in cols}
    print()
    print("| g | checkpoint | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for r in rows:
        print(f"| {r['g']:.3f} | {r['checkpoint']} | " + " | ".join(f"{r[k]:.4g}" for k in cols) + " |")
    print()
    for k, (ok, how) in summary.items():
        print(f"{k}: {'monotone' if ok else 'NOT monotone'} ({how})")
    if args.output:
        Path(args.output).write_text(json.dumps(
            {"task": args.task, "data": args.data, "pairs": [n for n, _, _ in pairs],
             "members": {c.name: g for g, c in family.members}, "rows": rows,
             "monotone": {k: {"monotone": ok, "detail": how} for k, (ok, how) in summary.items()}},
            indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
