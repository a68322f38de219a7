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
