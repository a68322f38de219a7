"""Running the network: device choice, tiled inference with progress and cancel,
output scaling.

Tiles carry a halo of the network's receptive radius, so that for a conv stack
(``batch`` folded, or ``none``) the tiled result equals the whole-image result:
zero padding at a tile's inner edge only disturbs pixels within that radius, and
those are cut away. Memory is bounded by the tile size, not the image size. On the
CPU the tiles run in parallel, one worker thread per core (see :func:`_each_tile`).

A ``reference`` checkpoint normalises every layer with the moments of the whole
image. They are gathered over tiles level by level (a layer's moments depend on
the normalisation of the layers before it), then folded into the convolutions, and
the final pass is an ordinary conv-stack pass.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch.nn import functional as F

from .errors import Cancelled, PmgiError
from .spec import DEFAULT_TILE, DEVICES, PRECISIONS  # re-exported: torch-free home
from .network import (FEATURES, LAYERS, LEVELS, LRELU_SLOPE, PMGI, RECEPTIVE_RADIUS, Moments,
                      from_network, to_network)

__all__ = ["DEVICES", "DEFAULT_TILE", "PRECISIONS", "choose_device", "fuse_gray", "to_uint8", "tiles",
           "Progress", "Cancel"]

REFERENCE_WHOLE_PIXELS = 1 << 20
Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def choose_device(preference: str = "auto") -> torch.device:
    """``auto``: CUDA, then Apple MPS, then the CPU. An explicit device that is not
    there is an error, not a silent fallback."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference == "cpu":
        return torch.device("cpu")
    if preference == "cuda":
        if not torch.cuda.is_available():
            raise PmgiError("device cuda was asked for, but no CUDA GPU is available")
        return torch.device("cuda")
    if preference == "mps":
        if not _mps_available():
            raise PmgiError("device mps was asked for, but Apple MPS is not available")
        return torch.device("mps")
    raise PmgiError(f"unknown device {preference!r}; choose one of {', '.join(DEVICES)}")


@dataclass(frozen=True)
class Tile:
    """Core region [y0:y1, x0:x1] of the output and the haloed input region around it."""

    y0: int
    y1: int
    x0: int
    x1: int
    hy0: int
    hy1: int
    hx0: int
    hx1: int

    def crop(self) -> tuple[slice, slice]:
        """Where the core lies inside the haloed tile."""
        return (slice(self.y0 - self.hy0, self.y1 - self.hy0),
                slice(self.x0 - self.hx0, self.x1 - self.hx0))


def tiles(h: int, w: int, tile: int, halo: int = RECEPTIVE_RADIUS) -> list[Tile]:
    """Tiles of at most ``tile`` x ``tile``, as even as the image allows: no thin strip
    at the right or bottom, where the halo would cost more than the core, and tiles of
    one size keep the workers evenly loaded."""
    if tile < 1:
        raise PmgiError(f"tile size must be positive, got {tile}")
    ny, nx = -(-h // tile), -(-w // tile)
    ys = [i * h // ny for i in range(ny + 1)]
    xs = [i * w // nx for i in range(nx + 1)]
    out = []
    for y0, y1 in zip(ys, ys[1:]):
        for x0, x1 in zip(xs, xs[1:]):
            out.append(Tile(y0, y1, x0, x1, max(0, y0 - halo), min(h, y1 + halo),
                            max(0, x0 - halo), min(w, x1 + halo)))
    return out


# Where each level of path p reads from. A convolution over a concatenation is the
# sum of convolutions over its parts, so every feature stays its own 16-channel
# tensor and nothing is ever concatenated or sliced. "x" is the pair (a, b).
_SOURCES = {
    "conv1": ("x",),
    "conv2": ("{p}1",),
    "transfer2": ("a2", "b2"),  # both transfer blocks read path A, then path B
    "conv3": ("{p}1", "{p}2", "t{p}2"),
    "transfer3": ("a3", "b3"),
    "conv4": ("{p}1", "{p}2", "{p}3", "t{p}3"),
}
_OUTPUTS = {"conv1": "{p}1", "conv2": "{p}2", "transfer2": "t{p}2", "conv3": "{p}3",
            "transfer3": "t{p}3", "conv4": "{p}4"}
_FUSED = ("a1", "b1", "a2", "b2", "a3", "b3", "a4", "b4")  # the output conv's input order
# Features no longer read once a level is done (frees memory within a tile).
_DONE_AFTER = {"conv1": ("x",), "conv3": ("ta2", "tb2"), "conv4": ("ta3", "tb3")}

try:  # oneDNN's fused kernels (CPU builds with mkldnn): conv + activation, conv accumulated in place
    _CONV_LRELU = torch.ops.mkldnn._convolution_pointwise.default
    _CONV_ADD_ = torch.ops.mkldnn._convolution_pointwise_.binary
except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
    _CONV_LRELU = _CONV_ADD_ = None


def _fused(x: torch.Tensor) -> bool:
    return _CONV_LRELU is not None and x.device.type == "cpu"


def _conv_lrelu(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor, pad: int) -> torch.Tensor:
    if _fused(x):
        return _CONV_LRELU(x, w, bias, [pad, pad], [1, 1], [1, 1], 1, "leaky_relu", [LRELU_SLOPE], "")
    return F.leaky_relu_(F.conv2d(x, w, bias, padding=pad), LRELU_SLOPE)


def _conv_add_(z: torch.Tensor, x: torch.Tensor, w: torch.Tensor, pad: int) -> None:
    """z += conv(x, w), without a temporary where oneDNN can accumulate into z."""
    if _fused(x):
        _CONV_ADD_(z, x, w, None, [pad, pad], [1, 1], [1, 1], 1, "add", None, None, [], None)
    else:
        z += F.conv2d(x, w, padding=pad)


def _pixels(f: torch.Tensor) -> torch.Tensor:
    """An N x C x H x W channels-last feature as its (N*H*W) x C matrix (a view)."""
    return f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])


class ConvStack:
    """A conv-stack PMGI (``none``-normalised, or folded) laid out for inference.

    Computes exactly the network's function, laid out for oneDNN on the CPU: every
    feature is a 16-channel channels-last (NHWC) tensor, where oneDNN's convolutions
    run without reordering (about 2x faster than NCHW at 16-64 channels); a
    convolution over a dense concatenation is computed as the sum of convolutions
    over its parts, accumulated in place, so that no feature is copied into a
    concatenation; activations are fused into the convolution where there is one
    part. Layer 1 reads (a, b) once, since concat(a, a, b) repeats a. The output 1x1
    convolution is a matrix-vector product per feature.

    ``dtype=torch.bfloat16`` (CPU) computes in bfloat16: about 2.5x faster on CPUs
    with AVX-512 BF16, not exact (see benchmarks/bench_inference.py).
    """

    def __init__(self, model: PMGI, dtype: torch.dtype = torch.float32):
        if model.normalisation != "none":
            raise ValueError("ConvStack needs a none-normalised (folded) model")
        self.dtype = dtype
        layout = lambda w: w.contiguous(memory_format=torch.channels_last).to(dtype)  # noqa: E731
        # (path, level) -> ([(source, weight)], bias, padding)
        self.levels: dict[tuple[str, str], tuple[list, torch.Tensor, int]] = {}
        with torch.no_grad():
            for p in "ab":
                for name, kernel, _ in LAYERS:
                    unit = getattr(getattr(model, p), name)
                    w, bias = unit.conv.weight.detach(), unit.conv.bias.detach()
                    if name == "conv1":
                        # Path A sees (a, a, b), path B (b, b, a): as weights on (a, b).
                        w = (torch.stack([w[:, 0] + w[:, 1], w[:, 2]], 1) if p == "a"
                             else torch.stack([w[:, 2], w[:, 0] + w[:, 1]], 1))
                        parts = [("x", w)]
                    else:
                        parts = [(s.format(p=p), w[:, FEATURES * i:FEATURES * (i + 1)])
                                 for i, s in enumerate(_SOURCES[name])]
                    self.levels[p, name] = ([(s, layout(w)) for s, w in parts], bias.to(dtype),
                                            kernel // 2)
            wf = model.fuse.weight.detach()[0, :, 0, 0]
            self.fuse = [(s, wf[FEATURES * i:FEATURES * (i + 1)].contiguous().to(dtype))
                         for i, s in enumerate(_FUSED)]
            self.fuse_bias = model.fuse.bias.detach().to(dtype)

    def pair(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The input pair, two N x 1 x H x W tensors in the network range, as "x"."""
        return torch.cat((a, b), 1).to(self.dtype).contiguous(memory_format=torch.channels_last)

    def level(self, p: str, name: str, f: dict, activate: bool = True) -> torch.Tensor:
        """One level of path ``p`` from the features ``f`` it reads."""
        parts, bias, pad = self.levels[p, name]
        (s0, w0), rest = parts[0], parts[1:]
        if activate and not rest:
            return _conv_lrelu(f[s0], w0, bias, pad)
        z = F.conv2d(f[s0], w0, bias, padding=pad)
        for s, w in rest:
            _conv_add_(z, f[s], w, pad)
        return F.leaky_relu_(z, LRELU_SLOPE) if activate else z

    def output(self, f: dict) -> torch.Tensor:
        """The fused N x 1 x H x W tanh output (float32) from the eight path features."""
        n, _, h, w = f["a1"].shape
        y = None
        for s, wf in self.fuse:
            y = torch.mv(_pixels(f[s]), wf) if y is None else y.addmv_(_pixels(f[s]), wf)
        y += self.fuse_bias
        return torch.tanh_(y).view(n, 1, h, w).float()

    def forward_pair(self, x: torch.Tensor) -> torch.Tensor:
        f = {"x": x}
        for name in LEVELS:
            for p in "ab":
                f[_OUTPUTS[name].format(p=p)] = self.level(p, name, f)
            for s in _DONE_AFTER.get(name, ()):
                del f[s]
        return self.output(f)

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.forward_pair(self.pair(a, b))

    def to(self, device: torch.device) -> "ConvStack":
        for key, (parts, bias, pad) in self.levels.items():
            self.levels[key] = ([(s, w.to(device)) for s, w in parts], bias.to(device), pad)
        self.fuse = [(s, w.to(device)) for s, w in self.fuse]
        self.fuse_bias = self.fuse_bias.to(device)
        return self


class _Stop(Exception):
    """Ends a forward pass once the wanted level's moments are gathered."""


class _LevelSums:
    """Accumulates per-channel sums of one level's conv outputs over tile cores."""

    def __init__(self, level: str, known: Moments, core: tuple[slice, slice]):
        self.level, self.known, self.core = level, known, core
        self.sums: dict[str, list] = {}

    def __call__(self, key: str, z: torch.Tensor) -> None:
        zc = z[:, :, self.core[0], self.core[1]].double()
        s, s2, n = zc.sum((0, 2, 3)), (zc * zc).sum((0, 2, 3)), zc[0, 0].numel()
        acc = self.sums.setdefault(key, [0, 0, 0])
        acc[0], acc[1], acc[2] = acc[0] + s, acc[1] + s2, acc[2] + n
        if key == f"b.{self.level}":
            raise _Stop


_threads_lock = threading.Lock()
_pinned = 0  # fuse_gray calls currently running tiles on worker threads
_saved_threads = 1


@contextmanager
def _one_intraop_thread():
    """torch's intra-op thread count is 1 while tiles run on worker threads (one per
    core), restored when the last such call ends. Yields the count it replaced."""
    global _pinned, _saved_threads
    with _threads_lock:
        if _pinned == 0:
            _saved_threads = torch.get_num_threads()
            torch.set_num_threads(1)
        _pinned += 1
        cores = _saved_threads
    try:
        yield cores
    finally:
        with _threads_lock:
            _pinned -= 1
            if _pinned == 0:
                torch.set_num_threads(_saved_threads)


def _each_tile(plan: list[Tile], work: Callable[[Tile], object], consume: Callable[[object], None],
               device: torch.device, cancel: Cancel | None, step: Iterator[None]) -> None:
    """``consume(work(tile))`` for every tile, in plan order; a progress step after each
    tile, ``cancel`` checked between tiles.

    On the CPU the tiles run on one worker thread per core (torch's thread count), each
    with one intra-op thread, rather than one tile at a time with every core inside
    each convolution: the small convolutions of a tile then never wait on each
    other's threads at barriers (measured 1.6-4x faster on the 2-core machine while
    another process was busy, and never slower). Results are consumed in plan
    order, so sums over tiles do not depend on thread timing.
    """
    def run(t: Tile):
        with torch.inference_mode():
            return work(t)

    if device.type != "cpu" or len(plan) == 1 or torch.get_num_threads() == 1:
        for t in plan:
            _check_cancel(cancel)
            consume(run(t))
            next(step)
        return
    with _one_intraop_thread() as cores:
        workers = min(cores, len(plan))
        # set_num_threads(1) in each worker too: a new thread's OpenMP team size is its own.
        with ThreadPoolExecutor(workers, thread_name_prefix="pmgi-tile",
                                initializer=torch.set_num_threads, initargs=(1,)) as pool:
            todo = iter(plan)
            pending: deque = deque()
            try:
                for t in todo:
                    _check_cancel(cancel)
                    pending.append(pool.submit(run, t))
                    if len(pending) == workers:
                        break
                while pending:
                    consume(pending.popleft().result())
                    next(step)
                    t = next(todo, None)
                    if t is not None:
                        _check_cancel(cancel)
                        pending.append(pool.submit(run, t))
            finally:
                for f in pending:  # after a cancel or failure: at most one tile per worker left
                    f.cancel()


def _check_cancel(cancel: Cancel | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("cancelled")


def _tile_input(x: np.ndarray, t: Tile, device: torch.device) -> torch.Tensor:
    """One haloed tile in the network's range; converting per tile keeps memory
    bounded by the tile, not the image."""
    return to_network(torch.from_numpy(x[t.hy0:t.hy1, t.hx0:t.hx1]).to(device))[None, None]


def _tile_pair(a: np.ndarray, b: np.ndarray, t: Tile, device: torch.device,
               dtype: torch.dtype) -> torch.Tensor:
    """One haloed tile of both sources as the conv stack's channels-last input "x"."""
    x = np.stack((a[t.hy0:t.hy1, t.hx0:t.hx1], b[t.hy0:t.hy1, t.hx0:t.hx1]), -1)
    return to_network(torch.from_numpy(x).to(device)).to(dtype).permute(2, 0, 1)[None]


def _tiled_moments(model: PMGI, a: np.ndarray, b: np.ndarray, plan: list[Tile],
                   step: Iterator[None], cancel: Cancel | None, device: torch.device) -> Moments:
    known = Moments({}, {})
    for level in LEVELS:
        sums: dict[str, list] = {}
        for t in plan:
            _check_cancel(cancel)
            collector = _LevelSums(level, known, t.crop())
            collector.sums = sums
            try:
                model(_tile_input(a, t, device), _tile_input(b, t, device), moments=known,
                      collect=collector)
            except _Stop:
                pass
            next(step)
        for key, (s, s2, n) in sums.items():
            mean = s / n
            var = (s2 / n - mean * mean).clamp_min(0)
            known.mean[key] = mean.float()
            known.var[key] = var.float()
    return known


def fuse_gray(model: PMGI, a: np.ndarray, b: np.ndarray, *, device: torch.device | str = "cpu",
              tile: int = DEFAULT_TILE, progress: Progress | None = None,
              cancel: Cancel | None = None, precision: str = "fp32",
              reference_whole_pixels: int = REFERENCE_WHOLE_PIXELS) -> np.ndarray:
    """Run the network on two gray images (values 0..255, same H x W).

    Returns the network's tanh output, float32 H x W in [-1, 1]. ``progress(done,
    total)`` is called after every tile; ``cancel()`` is checked between tiles and
    raises :class:`Cancelled` when it returns true. ``precision="bf16"`` (CPU only)
    computes the convolutions in bfloat16: about 2.5x faster where the CPU has
    AVX-512 BF16, within about one gray level of fp32 (not exact; see
    benchmarks/bench_inference.py).
    """
    if a.shape != b.shape or a.ndim != 2:
        raise PmgiError(f"the two sources must be gray images of one size, got {a.shape} and {b.shape}")
    device = torch.device(device)
    dtype = _compute_dtype(precision, device)
    h, w = a.shape
    plan = tiles(h, w, tile)
    # A reference model on an image of up to reference_whole_pixels runs whole, as the
    # released script does: one pass instead of seven, at ~1.3 kB per pixel.
    reference_whole = model.normalisation == "reference" and (
        len(plan) == 1 or h * w <= reference_whole_pixels)
    if reference_whole:
        plan = tiles(h, w, max(h, w))
    passes = 1 if (model.normalisation != "reference" or reference_whole) else len(LEVELS) + 1
    total = passes * len(plan)
    done = 0

    def advance():
        nonlocal done
        while True:
            done += 1
            if progress is not None:
                progress(done, total)
            yield

    step = advance()
    out = np.empty((h, w), np.float32)
    with torch.inference_mode():
        model = model.to(device).eval()
        a = np.asarray(a, dtype=np.float32)
        b = np.asarray(b, dtype=np.float32)
        if model.normalisation == "batch":
            model = model.fold()
        elif model.normalisation == "reference" and not reference_whole:
            model = model.fold(_tiled_moments(model, a, b, plan, step, cancel, device))
        stack = None if model.normalisation == "reference" else ConvStack(model, dtype).to(device)

        def work(t: Tile) -> None:
            if stack is None:
                y = model(_tile_input(a, t, device), _tile_input(b, t, device))
            else:
                y = stack.forward_pair(_tile_pair(a, b, t, device, dtype))
            cy, cx = t.crop()
            out[t.y0:t.y1, t.x0:t.x1] = y[0, 0, cy, cx].float().cpu().numpy()

        _each_tile(plan, work, lambda _: None, device, cancel, step)
    return out


def _compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision not in PRECISIONS:
        raise PmgiError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16":
        if device.type != "cpu":
            raise PmgiError("precision bf16 is for the CPU; GPUs run fp32")
        return torch.bfloat16
    return torch.float32


def to_uint8(y: np.ndarray, *, stretch: bool = False) -> np.ndarray:
    """The network output as an 8-bit gray image.

    Default: ``v = 127.5 y + 127.5`` clipped to 0..255 and rounded. ``stretch``
    reproduces the released test script's saving, a min-max stretch to 0..255
    (rounded half up, as scipy's ``bytescale`` did).
    """
    if stretch:
        lo, hi = float(y.min()), float(y.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        v = (y.astype(np.float64) - lo) * scale
        return np.floor(np.clip(v, 0, 255) + 0.5).astype(np.uint8)
    v = from_network(torch.from_numpy(np.asarray(y, dtype=np.float32))).numpy()
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)
