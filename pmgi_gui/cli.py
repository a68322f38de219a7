"""The ``pmgi`` command: argument parsing and messages only; the work is in core."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .core.colour import PET_COLORMAPS
from .core.spec import DEFAULT_TILE, PRECISIONS
from .core.errors import PmgiError
from .core.tasks import TASK_NAMES

__all__ = ["main", "build_parser"]


def _check_output(out: Path, sources, overwrite: bool) -> None:
    for src in sources:
        if out.exists() and Path(src).exists() and out.samefile(src):
            raise PmgiError(f"refusing to write over the source image {out}")
    if out.exists() and not overwrite:
        raise PmgiError(f"{out} exists; pass --overwrite to replace it")


def _output_georef(task: str, sa, sb, out: Path):
    """The georeferencing an output keeps: the PAN grid's for pan-sharpening, else
    the sources' (they share one grid). Only a TIFF can carry it."""
    georef = sb.georef if task == "pan-sharpening" else (sa.georef or sb.georef)
    if georef is not None and out.suffix.lower() not in (".tif", ".tiff"):
        print(f"note: {out.name} cannot hold the sources' georeferencing; write a .tif to keep it",
              file=sys.stderr)
        return None
    return georef


def _fuse_one(task: str, path_a, path_b, out: Path, args) -> str:
    from .core import imageio
    from .core.checkpoints import find_checkpoint
    from .core.engine import choose_device, fuse_gray, to_uint8
    from .core.fusion import PmgiFuser, fuse
    from .core.tasks import PipelineOptions

    _check_output(out, (path_a, path_b), args.overwrite)
    sa, sb = imageio.read_source(path_a), imageio.read_source(path_b)
    ckpt = find_checkpoint(args.checkpoint, task)
    if args.network_only:
        if sa.pixels.shape[:2] != sb.pixels.shape[:2]:
            (ha, wa), (hb, wb) = sa.size, sb.size
            raise PmgiError(f"the sources differ in size: {Path(path_a).name} is {wa}x{ha}, "
                            f"{Path(path_b).name} is {wb}x{hb}")
        device = choose_device(args.device)
        y = fuse_gray(ckpt.load_model(band=args.band), imageio.to_gray(sa.pixels),
                      imageio.to_gray(sb.pixels), device=device, tile=args.tile,
                      precision=args.precision)
        pixels, georef = to_uint8(y, stretch=args.stretch), None
    else:
        if args.stretch:
            raise PmgiError("--stretch applies to the raw network output: use it with --network-only")
        fuser = PmgiFuser(ckpt, device=args.device, tile=args.tile, precision=args.precision)
        device = fuser.device
        pixels = fuse(task, sa.pixels, sb.pixels, fuser=fuser,
                      options=PipelineOptions(pet_colormap=args.pet_colormap)).pixels
        georef = _output_georef(task, sa, sb, out)
    imageio.write_image(out, pixels, georef=georef, overwrite=args.overwrite, protect=(path_a, path_b))
    return (f"fused {Path(path_a).name} + {Path(path_b).name} ({task}) with {ckpt.name} "
            f"({ckpt.label}) on {device.type} -> {out}")


def _fuse(args: argparse.Namespace) -> int:
    if args.demo:
        return _fuse_demo(args)
    if not (args.task and args.a and args.b):
        raise PmgiError("fuse needs --task and the two sources A and B (or --demo)")
    print(_fuse_one(args.task, args.a, args.b, Path(args.output), args))
    return 0


def _fuse_demo(args: argparse.Namespace) -> int:
    """Every preset on its built-in demo pair, into the folder -o."""
    from .core.checkpoints import list_checkpoints
    from .core.demo import demo_pair

    if args.a or args.b or args.checkpoint:
        raise PmgiError("--demo takes no sources and no --checkpoint: it uses the built-in pairs "
                        "and each task's default checkpoint")
    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)
    tasks = [args.task] if args.task else list(TASK_NAMES)
    fused = 0
    for task in tasks:
        if not list_checkpoints(task):
            print(f"{task}: skipped, no PMGI checkpoint is installed for it", file=sys.stderr)
            continue
        a, b = demo_pair(task)
        out = folder / f"{task}{'.tif' if task == 'pan-sharpening' else '.png'}"
        print(_fuse_one(task, a, b, out, args))
        fused += 1
    if not fused:
        raise PmgiError("no task could be fused: no PMGI checkpoint is installed")
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
                           exclude=args.exclude, band=args.band, bn_stats=args.bn_stats,
                           progress=progress, cancel=interrupt)
    except Cancelled as exc:
        close_bar()
        print(f"pmgi: {exc}", file=sys.stderr)
        return 130
    finally:
        close_bar()
    info = result.checkpoint.extra["training" if args.band is None else f"training_band{args.band}"]
    print(f"trained {task.name} checkpoint -> {result.checkpoint.path} ({result.steps} steps on "
          f"{info['data']['pair_count']} pairs, {result.seconds:.0f} s on {info['device']}, "
          f"final loss {result.final_loss:.4g}; loss curve {result.loss_csv})")
    return 0


def _recalibrate(args: argparse.Namespace) -> int:
    from .core.training import recalibrate_checkpoint

    ckpt = recalibrate_checkpoint(args.checkpoint, args.task, args.data, args.output,
                                  exclude=args.exclude, eval_data=args.eval_data,
                                  overwrite=args.overwrite)
    info = ckpt.extra["batch_norm_recalibrated"]
    print(f"recalibrated {info['source']['checkpoint']} on {info['images']} whole images "
          f"-> {ckpt.path}")
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


def _self_test(args: argparse.Namespace) -> int:
    # Also here because a windowed executable has no console on Windows: the frozen
    # bundle's console `pmgi self-test` prints where `pmgi-gui --self-test` cannot.
    from .selftest import self_test

    return self_test()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pmgi", description="PMGI image fusion from the command line.")
    parser.add_argument("--version", action="version", version=f"pmgi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fuse", help="fuse two source images")
    p.add_argument("a", nargs="?", help="first source (infrared, under-exposed, PET, near focus, MS)")
    p.add_argument("b", nargs="?", help="second source (visible, over-exposed, MRI, far focus, PAN)")
    p.add_argument("-o", "--output", required=True,
                   help="the fused image to write (PNG, TIFF, ...); with --demo, a folder")
    p.add_argument("--task", choices=TASK_NAMES, help="the fusion task (with --demo: only this one)")
    p.add_argument("--demo", action="store_true",
                   help="fuse the built-in demo pair of every task into the folder -o")
    p.add_argument("--checkpoint", help="checkpoint folder or the name of an installed one "
                                        "(default: the task's default); NAME@gG blends NAME's "
                                        "family at gradient scale G, e.g. paper@g1.5")
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
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="arithmetic of the network: fp32 (default, exact), bf16 (CPU only: "
                        "about 2x faster on CPUs with AVX-512 BF16, within about a gray level) "
                        "or fp16 (CUDA GPUs only, approximate)")
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
                   help="PMGI checkpoint (folder, name, or NAME@gG: NAME's family at "
                        "gradient scale G); repeat to compare several")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("-o", "--output", required=True, help="report path; writes REPORT.csv and REPORT.json")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_evaluate)

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
    p.add_argument("--exclude", metavar="DIR",
                   help="leave out training pairs whose images (by pixel content) are among the "
                        "pairs of DIR, e.g. the evaluation pairs")
    p.add_argument("--band", type=int, metavar="K",
                   help="pan-sharpening: train the model of MS band K only and add it to -o as "
                        "bandK (one network per band, as the authors did)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing checkpoint or start over an interrupted run")
    p.add_argument("-o", "--output", required=True, help="checkpoint folder to write")
    p.add_argument("--bn-stats", choices=("patches", "images"), default="patches",
                   help="batch norm statistics for inference: the running averages over the "
                        "training patches (default), or re-estimated on whole training images "
                        "after the last step")
    p.set_defaults(func=_train)

    p = sub.add_parser("recalibrate", help="copy a batch-norm checkpoint with its statistics "
                                           "re-estimated on whole training images")
    p.add_argument("checkpoint", help="checkpoint folder or installed name")
    p.add_argument("--task", required=True, choices=TASK_NAMES)
    p.add_argument("--data", required=True, metavar="DIR", help="training pairs (as pmgi train)")
    p.add_argument("--exclude", metavar="DIR", help="leave out pairs whose images are among DIR's")
    p.add_argument("--eval-data", metavar="DIR", help="record the task's metrics on these pairs")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("-o", "--output", required=True, help="new checkpoint folder")
    p.set_defaults(func=_recalibrate)

    p = sub.add_parser("self-test", help="check this installation, as `pmgi-gui --self-test`: every "
                                         "shipped checkpoint loads and fuses its task's demo pair")
    p.set_defaults(func=_self_test)
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
