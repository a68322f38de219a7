"""The ``pmgi`` command: argument parsing and messages only; the work is in core."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .core.colour import PET_COLORMAPS
from .core.engine import DEFAULT_TILE
from .core.errors import PmgiError
from .core.tasks import TASK_NAMES

__all__ = ["main", "build_parser"]


def _check_output(out: Path, sources, overwrite: bool) -> None:
    for src in sources:
        if out.exists() and Path(src).exists() and out.samefile(src):
            raise PmgiError(f"refusing to write over the source image {out}")
    if out.exists() and not overwrite:
        raise PmgiError(f"{out} exists; pass --overwrite to replace it")


def _fuse(args: argparse.Namespace) -> int:
    from .core import imageio
    from .core.checkpoints import find_checkpoint
    from .core.engine import choose_device, fuse_gray, to_uint8
    from .core.fusion import PmgiFuser, fuse
    from .core.tasks import PipelineOptions

    out = Path(args.output)
    _check_output(out, (args.a, args.b), args.overwrite)
    pa = imageio.read_image(args.a)
    pb = imageio.read_image(args.b)
    ckpt = find_checkpoint(args.checkpoint, args.task)
    if args.network_only:
        if pa.shape[:2] != pb.shape[:2]:
            raise PmgiError(f"the sources differ in size: {Path(args.a).name} is {pa.shape[1]}x"
                            f"{pa.shape[0]}, {Path(args.b).name} is {pb.shape[1]}x{pb.shape[0]}")
        device = choose_device(args.device)
        y = fuse_gray(ckpt.load_model(band=args.band), imageio.to_gray(pa), imageio.to_gray(pb),
                      device=device, tile=args.tile)
        pixels = to_uint8(y, stretch=args.stretch)
    else:
        if args.stretch:
            raise PmgiError("--stretch applies to the raw network output: use it with --network-only")
        fuser = PmgiFuser(ckpt, device=args.device, tile=args.tile)
        device = fuser.device
        pixels = fuse(args.task, pa, pb, fuser=fuser,
                      options=PipelineOptions(pet_colormap=args.pet_colormap)).pixels
    imageio.write_image(out, pixels, overwrite=args.overwrite, protect=(args.a, args.b))
    print(f"fused {Path(args.a).name} + {Path(args.b).name} with {ckpt.name} ({ckpt.label}) "
          f"on {device.type} -> {out}")
    return 0


def _import_official(args: argparse.Namespace) -> int:
    from .core.checkpoints import import_official

    ckpt = import_official(args.prefix, args.task, args.output, band=args.band)
    print(f"imported {args.prefix} as {ckpt.normalisation}-normalised checkpoint for {ckpt.task} "
          f"-> {ckpt.path} (models: {', '.join(sorted(ckpt.models))})")
    return 0


def _metrics(args: argparse.Namespace) -> int:
    import json

    from .core import imageio, metrics
    from .core.evaluation import score
    from .core.tasks import check_pair

    a, b, f = (imageio.read_image(p) for p in (args.a, args.b, args.fused))
    check_pair(args.task, a, b)
    keys = None
    if args.all:
        kinds = ("ms_pan_fused",) if args.task == "pan-sharpening" else ("f", "abf")
        keys = [k for k, m in metrics.METRICS.items() if m.inputs in kinds]
    expected = b.shape[:2]
    if f.shape[:2] != expected:
        raise PmgiError(f"the fused image is {f.shape[1]}x{f.shape[0]}, but the sources call for "
                        f"{expected[1]}x{expected[0]}")
    values = score(args.task, a, b, f, keys)
    if args.json:
        print(json.dumps({k: (v if v == v else None) for k, v in values.items()}, indent=2))
    else:
        for k, v in values.items():
            m = metrics.METRICS[k]
            print(f"{k:<14} {v:>12.6f}   {'higher' if m.higher_is_better else 'lower'} is better; "
                  f"{m.convention}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .core.evaluation import evaluate, format_table, write_report

    bar = tqdm(total=0, unit="run", disable=args.quiet)

    def progress(done, total, what):
        bar.total = total
        bar.set_description(what)
        bar.update(done - bar.n)

    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    report = evaluate(args.task, args.folder, methods=methods, checkpoints=args.checkpoint,
                      device=args.device, progress=progress)
    bar.close()
    csv_path, json_path = write_report(report, args.output, overwrite=args.overwrite)
    print(format_table(report))
    print(f"wrote {csv_path} and {json_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pmgi", description="PMGI image fusion from the command line.")
    parser.add_argument("--version", action="version", version=f"pmgi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fuse", help="fuse two source images")
    p.add_argument("a", help="first source (infrared, under-exposed, PET, near focus, MS)")
    p.add_argument("b", help="second source (visible, over-exposed, MRI, far focus, PAN)")
    p.add_argument("-o", "--output", required=True, help="the fused image to write (PNG, TIFF, ...)")
    p.add_argument("--task", required=True, choices=TASK_NAMES)
    p.add_argument("--checkpoint", help="checkpoint folder or the name of an installed one "
                                        "(default: the task's default)")
    p.add_argument("--band", type=int, help="band model to use from a per-band checkpoint")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--stretch", action="store_true",
                   help="min-max stretch the output to 0..255 as the released script saved it "
                        "(default: clip to 0..255)")
    p.add_argument("--network-only", action="store_true",
                   help="feed the two files straight to the network as its gray inputs A and B "
                        "(luma if colour) and write its gray output, bypassing the task pipeline")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE,
                   help=f"tile size in pixels for inference (default {DEFAULT_TILE})")
    p.add_argument("--pet-colormap", default="hot", choices=PET_COLORMAPS,
                   help="medical: colour map given to a gray PET (default hot)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=_fuse)

    p = sub.add_parser("import-official", help="convert an authors' TensorFlow checkpoint to our format")
    p.add_argument("prefix", help="checkpoint prefix, e.g. .../ir-vis/CGAN.model-1")
    p.add_argument("--task", required=True, choices=TASK_NAMES)
    p.add_argument("--band", type=int, help="pan-sharpening: the band this checkpoint fuses")
    p.add_argument("-o", "--output", required=True, help="checkpoint folder to write")
    p.set_defaults(func=_import_official)

    p = sub.add_parser("metrics", help="score any fused image (ours or another program's)")
    p.add_argument("--task", required=True, choices=TASK_NAMES)
    p.add_argument("a", help="first source (for pan-sharpening: the MS image)")
    p.add_argument("b", help="second source (for pan-sharpening: the PAN image)")
    p.add_argument("fused", help="the fused image")
    p.add_argument("--all", action="store_true", help="every metric, not just the paper's set")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_metrics)

    p = sub.add_parser("evaluate", help="fuse every pair of a folder with PMGI and the baselines, "
                                        "and score them")
    p.add_argument("--task", required=True, choices=TASK_NAMES)
    p.add_argument("folder", help="folder of pairs (sub-folders holding the task's two role files)")
    p.add_argument("--methods", help="comma-separated method keys (default: PMGI and every baseline)")
    p.add_argument("--checkpoint", action="append",
                   help="PMGI checkpoint (folder or name); repeat to compare several")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("-o", "--output", required=True, help="report path; writes REPORT.csv and REPORT.json")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except PmgiError as exc:
        print(f"pmgi: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pmgi: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
