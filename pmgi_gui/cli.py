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


def _parse_lambdas(text: str | None):
    from .core.tasks import Lambdas

    if text is None:
        return None
    parts = text.split(",")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise PmgiError(f"--lambdas needs four numbers A_INT,A_GRAD,B_INT,B_GRAD, got {text!r}")
    return Lambdas(*values)


class _Interrupt:
    """Ctrl-C asks a training run to stop after its current step (and save its
    state); a second Ctrl-C stops at once."""

    def __init__(self):
        self.asked = False

    def __enter__(self):
        import signal

        self._previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            if self.asked:
                raise KeyboardInterrupt
            self.asked = True
            print("\npmgi: stopping after this step (Ctrl-C again to stop now)", file=sys.stderr)

        try:
            signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            self._previous = None
        return self

    def __exit__(self, *exc):
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False

    def __call__(self) -> bool:
        return self.asked


def _progress_bar():
    """A tqdm bar made at the first step (so that input errors stay one line)."""
    from tqdm import tqdm

    state = {}

    def progress(step, total, loss, rate):
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=total, initial=step - 1, unit="step", dynamic_ncols=True,
                                      file=sys.stderr)
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{loss:.4g}", patches_s=f"{rate:.1f}")

    def close():
        if "bar" in state:
            state.pop("bar").close()

    return close, progress


def _train(args: argparse.Namespace) -> int:
    from .core.errors import Cancelled
    from .core.tasks import get_task

    task = get_task(args.task)
    lambdas = _parse_lambdas(args.lambdas)
    out = Path(args.output)
    if args.pair:
        if args.resume:
            raise PmgiError("--resume continues a --data run; a --pair fine-tune is short, run it again")
        return _fine_tune(args, task, lambdas, out)
    from .core.training import train

    close_bar, progress = _progress_bar()
    try:
        with _Interrupt() as interrupt:
            result = train(task.name, args.data, out, lambdas=lambdas,
                           steps=300 if args.steps is None else args.steps,
                           batch=32 if args.batch is None else args.batch, patch=args.patch,
                           lr=1e-3 if args.lr is None else args.lr,
                           schedule=args.schedule, lr_min=args.lr_min, seed=args.seed,
                           init=args.init, resume=args.resume, overwrite=args.overwrite,
                           label=args.label, device=args.device, threads=args.threads,
                           save_every=args.save_every, eval_data=args.eval_data,
                           progress=progress, cancel=interrupt)
    except Cancelled as exc:
        close_bar()
        print(f"pmgi: {exc}", file=sys.stderr)
        return 130
    finally:
        close_bar()
    info = result.checkpoint.extra["training"]
    print(f"trained {task.name} checkpoint -> {result.checkpoint.path} ({result.steps} steps on "
          f"{info['data']['pair_count']} pairs, {result.seconds:.0f} s on {info['device']}, "
          f"final loss {result.final_loss:.4g}; loss curve {result.loss_csv})")
    return 0


def _fine_tune(args: argparse.Namespace, task, lambdas, out: Path) -> int:
    from .core import imageio
    from .core.checkpoints import find_checkpoint
    from .core.training import fine_tune, save_fine_tuned

    if args.eval_data:
        raise PmgiError("--eval-data applies to a --data run")
    if (out / "manifest.json").exists() and not args.overwrite:
        raise PmgiError(f"{out} already holds a checkpoint; pass --overwrite to replace it")
    base = find_checkpoint(args.init, task.name)
    a, b = imageio.read_image(args.pair[0]), imageio.read_image(args.pair[1])
    steps = 100 if args.steps is None else args.steps
    close_bar, progress = _progress_bar()
    try:
        with _Interrupt() as interrupt:
            model, info = fine_tune(base, a, b, task.name, lambdas or base.lambdas, steps, progress,
                                    interrupt, batch=8 if args.batch is None else args.batch,
                                    patch=args.patch, lr=1e-4 if args.lr is None else args.lr,
                                    seed=args.seed, device=args.device,
                                    threads=args.threads)
    finally:
        close_bar()
    info["pair"] = [Path(p).name for p in args.pair]
    ckpt = save_fine_tuned(model, info, out_dir=out, label=args.label, overwrite=args.overwrite)
    print(f"fine-tuned {base.name} on {Path(args.pair[0]).name} + {Path(args.pair[1]).name} "
          f"({steps} steps, {info['seconds']:.0f} s, loss {info['loss']['first']:.4g} -> "
          f"{info['loss']['final']:.4g}) -> {ckpt.path}")
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

    p = sub.add_parser("train", help="train a checkpoint on a folder of pairs, or fine-tune one "
                                     "on a single pair with new loss weights")
    p.add_argument("--task", required=True, choices=TASK_NAMES)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", metavar="DIR",
                        help="training pairs: DIR/<pair>/<a>.* + <b>.* with the task's file stems "
                             "(ir/vis, under/over, pet/mri, near/far, ms/pan), or a folder holding "
                             "<task>/ laid out so")
    source.add_argument("--pair", nargs=2, metavar=("A", "B"),
                        help="fine-tune --init on this one pair (A first, as in pmgi fuse)")
    p.add_argument("--lambdas", metavar="A_INT,A_GRAD,B_INT,B_GRAD",
                   help="loss weights (default: the paper's for the task; for --pair, those of --init)")
    p.add_argument("--init", metavar="CKPT",
                   help="checkpoint to start from (folder or installed name). --data default: fresh "
                        "weights, N(0, 1e-3) truncated; --pair default: the task's default checkpoint")
    p.add_argument("--steps", type=int, help="optimiser steps (default 300; --pair 100)")
    p.add_argument("--patch", type=int, help="patch size (default 120; 60 for multi-focus)")
    p.add_argument("--batch", type=int, help="patches per step (default 32; --pair 8)")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-3; --pair 1e-4, constant)")
    p.add_argument("--schedule", default="cosine", choices=("cosine", "step", "constant"),
                   help="learning-rate schedule of a --data run (default cosine down to --lr-min)")
    p.add_argument("--lr-min", type=float, default=1e-5, help="final rate of the cosine schedule")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0): same seed, same weights")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run whose state is saved beside -o")
    p.add_argument("--label", help="the checkpoint's display name")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                   help="auto: CUDA when present, else the CPU")
    p.add_argument("--threads", type=int, help="CPU threads (default: the cores available)")
    p.add_argument("--save-every", type=int, default=25,
                   help="steps between saves of the resumable state (default 25)")
    p.add_argument("--eval-data", metavar="DIR",
                   help="after training, record the task's metrics on these pairs in the manifest "
                        "(needs the metrics module)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing checkpoint or start over an interrupted run")
    p.add_argument("-o", "--output", required=True, help="checkpoint folder to write")
    p.set_defaults(func=_train)
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
