"""Running the network: device choice, tiled inference with progress and cancel,
output scaling.

Tiles carry a halo of the network's receptive radius, so that for a conv stack
(``batch`` folded, or ``none``) the tiled result equals the whole-image result:
zero padding at a tile's inner edge only disturbs pixels within that radius, and
those are cut away. Memory is bounded by the tile size, not the image size. On the
CPU the tiles run in parallel, one worker thread per core (see :func:`_tile_runner`).

A ``reference`` checkpoint normalises every layer with the moments of the whole
image. Up to ``REFERENCE_WHOLE_PIXELS`` the image runs whole through the network's
own forward, as the released script runs it. Above, the moments are gathered over
tiles level by level (a layer's moments depend on the normalisation of the layers
before it): with per-tile caches of the conv sums when they fit in
``REFERENCE_CACHE_BYTES`` (1.13x the FLOPs of one pass), else by recomputing the
earlier levels in each pass and folding the moments into the convolutions (3.4x);
see :func:`_reference_tiled`. Both match whole-image inference within ~1e-5. The
cache can live in a :class:`Workspace` that the caller keeps between calls.
"""

from __future__ import annotations

import ctypes
import platform
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch.nn import functional as F

from .errors import Cancelled, PmgiError
from .spec import DEFAULT_TILE, DEVICES, PRECISIONS  # re-exported: torch-free home
from .network import (BN_EPS, FEATURES, LAYERS, LEVELS, LRELU_SLOPE, PMGI, RECEPTIVE_RADIUS,
                      from_network, to_network)

__all__ = ["DEVICES", "DEFAULT_TILE", "PRECISIONS", "choose_device", "fuse_gray", "to_uint8", "tiles",
           "Progress", "Cancel", "Workspace"]

# Up to 362 x 362 a reference model runs whole, through the network's own forward.
# Above, the cached tiled path is 4-6x faster (same run, 0.25-1 MP, busy 2-core CPU)
# and within ~5e-6 of it.
REFERENCE_WHOLE_PIXELS = 1 << 17
Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]


def _keep_tile_memory() -> bool:
    """Lets glibc's malloc keep the memory of freed tiles for the next ones.

    A tile's features are a few MB each, freed when the tile ends. By default glibc
    serves such blocks with mmap and unmaps them on free, or trims the top of a
    thread's heap, so the next tile touches fresh pages: 26k page faults a call for
    a 0.25-megapixel fusion on the project's 2-core machines, which took 171 ms
    with them and 129 ms without (medians of 10 calls).
    Blocks under 32 MB now come from the heaps, which are trimmed only past 256 MB
    free: the process keeps what its tiles last used (a 16-megapixel fusion peaked
    at 717 MB, against 595 MB measured before; benchmarks/bench_memory.py). Larger blocks
    (images, a reference model's level cache) are still unmapped when freed. Only on
    Linux with glibc; elsewhere the allocator is left as it is."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
        return (bool(libc.mallopt(m_mmap_threshold, 32 << 20))
                and bool(libc.mallopt(m_trim_threshold, 256 << 20)))
    except (OSError, AttributeError):  # pragma: no cover - an unusual libc
        return False


TILE_MEMORY_KEPT = _keep_tile_memory()


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


def _onednn_kernels():
    """oneDNN's fused CPU kernels, conv + activation and conv accumulated in place.
    They are torch's own (its compiler emits them) but not public API: they are
    tried once on a small input, and F.conv2d takes over if they fail."""
    try:
        conv = torch.ops.mkldnn._convolution_pointwise.default
        conv_add_ = torch.ops.mkldnn._convolution_pointwise_.binary
        x = torch.ones(1, 2, 3, 3).contiguous(memory_format=torch.channels_last)
        w = torch.ones(2, 2, 1, 1).contiguous(memory_format=torch.channels_last)
        y = conv(x, w, None, [0, 0], [1, 1], [1, 1], 1, "leaky_relu", [LRELU_SLOPE], "")
        conv_add_(y, x, w, None, [0, 0], [1, 1], [1, 1], 1, "add", None, None, [], None)
        if torch.equal(y, torch.full_like(y, 4.0)):
            return conv, conv_add_
    except Exception:  # pragma: no cover - builds without oneDNN, or a changed signature
        pass
    return None, None  # pragma: no cover


_CONV_LRELU, _CONV_ADD_ = _onednn_kernels()


def _fused(x: torch.Tensor) -> bool:
    # fp16 only reaches the CPU in tests (fuse_gray takes it on CUDA): F.conv2d runs it there.
    return _CONV_LRELU is not None and x.device.type == "cpu" and x.dtype != torch.float16


def _conv_lrelu(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor, pad: int) -> torch.Tensor:
    if _fused(x):
        return _CONV_LRELU(x, w, bias, [pad, pad], [1, 1], [1, 1], 1, "leaky_relu", [LRELU_SLOPE], "")
    return F.leaky_relu_(F.conv2d(x, w, bias, padding=pad), LRELU_SLOPE)


def _conv(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, pad: int) -> torch.Tensor:
    """A convolution, through oneDNN on the CPU: for a 1x1 kernel on a channels-last
    input F.conv2d falls back to its slow reference kernel (5x slower)."""
    if _fused(x):
        return _CONV_LRELU(x, w, bias, [pad, pad], [1, 1], [1, 1], 1, "none", [], "")
    return F.conv2d(x, w, bias, padding=pad)


def _conv_add_(z: torch.Tensor, x: torch.Tensor, w: torch.Tensor, pad: int) -> None:
    """z += conv(x, w), without a temporary where oneDNN can accumulate into z."""
    if _fused(x):
        _CONV_ADD_(z, x, w, None, [pad, pad], [1, 1], [1, 1], 1, "add", None, None, [], None)
    else:
        z += F.conv2d(x, w, padding=pad)


def _centred_sums(z: torch.Tensor) -> tuple[int, np.ndarray, np.ndarray]:
    """Pixel count, per-channel mean and sum of squared deviations (float64) of an
    N x C x H x W tensor: two float32 passes (torch.var_mean is 7x slower on
    channels-last tensors). A dense tensor is read as rows of up to 16 pixels, which
    the reductions vectorise better than rows of C channels (1.4x); the rows' sums
    are added in float64, in numpy: few torch calls, since each takes the GIL back
    when it ends, and py-spy showed the tile workers waiting there."""
    zp = _pixels(z)
    n, c = zp.shape
    k = next(k for k in (16, 8, 4, 2, 1) if n % k == 0)
    wide = zp.reshape(n // k, k * c)
    mean = _as_float64(wide.sum(0, dtype=torch.float32)).reshape(k, c).sum(0) / n
    centre = torch.from_numpy(np.tile(mean, k).astype(np.float32))
    if z.dtype != torch.float32 or z.device.type != "cpu":
        centre = centre.to(z.device, z.dtype)
    d = wide - centre
    m2 = _as_float64((d if d.dtype == torch.float32 else d.float()).pow_(2).sum(0))
    return n, mean, m2.reshape(k, c).sum(0)


def _as_float64(t: torch.Tensor) -> np.ndarray:
    return (t.numpy() if t.device.type == "cpu" else t.cpu().numpy()).astype(np.float64)


def _core_sums(z: torch.Tensor, crop: tuple[slice, slice]) -> tuple[int, np.ndarray, np.ndarray]:
    """:func:`_centred_sums` of a channels-last tile's core, without copying the core
    out: its rows are one dense block, whose moments less those of the halo columns
    beside the core are the core's (Chan et al.'s combination, reversed)."""
    cy, cx = crop
    rows = z[..., cy, :]
    n, mean, m2 = _centred_sums(rows)
    sides = [s for s in (rows[..., :cx.start], rows[..., cx.stop:]) if s.shape[-1]]
    if not sides:
        return n, mean, m2
    ns, mean_s, m2_s = _centred_sums(torch.cat(sides, -1) if len(sides) > 1 else sides[0])
    nc = n - ns
    mean_c = (n * mean - ns * mean_s) / nc
    delta = mean_s - mean_c
    return nc, mean_c, m2 - m2_s - delta * delta * (nc * ns / n)


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

    ``dtype=torch.bfloat16`` (CPU) computes in bfloat16: about 2x faster on CPUs
    with AVX-512 BF16, not exact (see benchmarks/bench_inference.py).

    From a ``reference`` model, every level is first normalised with the moments of
    what it is given, as the released script does with a whole image
    (:meth:`forward_pair`); :meth:`fold_level` folds a level's whole-image moments
    into its convolution, and once all are folded the stack is a plain conv stack.
    """

    def __init__(self, model: PMGI, dtype: torch.dtype = torch.float32):
        if model.normalisation not in ("none", "reference"):
            raise ValueError("ConvStack needs a none-normalised (folded) or a reference model")
        self.dtype = dtype
        # Levels whose normalisation is still the per-input moments (reference models).
        self.pending = {(p, n) for p in "ab" for n in LEVELS} if model.normalisation == "reference" \
            else set()
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
        z = _conv(f[s0], w0, bias, pad)
        for s, w in rest:
            _conv_add_(z, f[s], w, pad)
        return F.leaky_relu_(z, LRELU_SLOPE) if activate else z

    def normalised(self, p: str, name: str, f: dict) -> torch.Tensor:
        """A level's activated output; a pending level normalised with its own moments."""
        if (p, name) not in self.pending:
            return self.level(p, name, f)
        z = self.level(p, name, f, activate=False)
        n, mean, m2 = _centred_sums(z)
        r = torch.from_numpy(1 / np.sqrt(m2 / n + BN_EPS)).to(z.device, z.dtype).view(1, -1, 1, 1)
        return F.leaky_relu_(z.sub_(torch.from_numpy(mean).to(z.device, z.dtype).view(1, -1, 1, 1)).mul_(r),
                             LRELU_SLOPE)

    def fold_level(self, p: str, name: str, mean: torch.Tensor, var: torch.Tensor) -> None:
        """Fold one level's moments (gamma 1, beta 0) into its convolution."""
        parts, bias, pad = self.levels[p, name]
        r = torch.rsqrt(var.double() + BN_EPS)
        scale = lambda w: (w.double() * r[:, None, None, None]).to(w.dtype)  # noqa: E731
        self.levels[p, name] = ([(s, scale(w).contiguous(memory_format=torch.channels_last))
                                 for s, w in parts],
                                ((bias.double() - mean.double()) * r).to(bias.dtype), pad)
        self.pending.discard((p, name))

    def part(self, p: str, name: str, source: str) -> tuple[torch.Tensor, int]:
        """The weights of one source of a level, and its padding."""
        parts, _, pad = self.levels[p, name]
        return dict(parts)[source], pad

    def bias(self, p: str, name: str) -> torch.Tensor:
        return self.levels[p, name][1]

    def output(self, f: dict) -> torch.Tensor:
        """The fused N x 1 x H x W tanh output (float32) from the eight path features."""
        n, _, h, w = f["a1"].shape
        y = None
        for s, wf in self.fuse:
            y = torch.mv(_pixels(f[s]), wf) if y is None else y.addmv_(_pixels(f[s]), wf)
        y += self.fuse_bias
        return torch.tanh_(y).view(n, 1, h, w).float()

    def features(self, x: torch.Tensor, until: str | None = None) -> dict:
        """The activated features of every level before ``until`` (all if None)."""
        f = {"x": x}
        for name in LEVELS:
            if name == until:
                break
            for p in "ab":
                f[_OUTPUTS[name].format(p=p)] = self.normalised(p, name, f)
            for s in _DONE_AFTER.get(name, ()):
                del f[s]
        return f

    def forward_pair(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.features(x))

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.forward_pair(self.pair(a, b))

    def to(self, device: torch.device) -> "ConvStack":
        for key, (parts, bias, pad) in self.levels.items():
            self.levels[key] = ([(s, w.to(device)) for s, w in parts], bias.to(device), pad)
        self.fuse = [(s, w.to(device)) for s, w in self.fuse]
        self.fuse_bias = self.fuse_bias.to(device)
        return self


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


@contextmanager
def _tile_runner(plan: list[Tile], device: torch.device, cancel: Cancel | None,
                 step: Iterator[None]) -> Iterator[Callable]:
    """Yields ``each(work, consume)``, which calls ``consume(work(tile))`` for every tile,
    in plan order; a progress step after each tile, ``cancel`` checked between tiles.
    One runner serves every pass of a call.

    On the CPU the tiles run on one worker thread per core (torch's thread count), each
    with one intra-op thread, rather than one tile at a time with every core inside
    each convolution: the small convolutions of a tile then never wait on each
    other's threads at barriers (measured 1.6-4x faster on the 2-core machine while
    another process was busy, and never slower). Results are consumed in plan
    order, so sums over tiles do not depend on thread timing; up to two tiles per
    worker are queued, so that a worker that finishes early need not wait for the
    tile before its own to be consumed.
    """
    def run(work: Callable[[Tile], object], t: Tile):
        with torch.inference_mode():
            return work(t)

    if device.type != "cpu" or len(plan) == 1 or torch.get_num_threads() == 1:
        def serial(work: Callable[[Tile], object], consume: Callable[[object], None]) -> None:
            for t in plan:
                _check_cancel(cancel)
                consume(run(work, t))
                next(step)

        yield serial
        return
    with _one_intraop_thread() as cores:
        workers = min(cores, len(plan))
        # set_num_threads(1) in each worker too: a new thread's OpenMP team size is its own.
        with ThreadPoolExecutor(workers, thread_name_prefix="pmgi-tile",
                                initializer=torch.set_num_threads, initargs=(1,)) as pool:
            def parallel(work: Callable[[Tile], object], consume: Callable[[object], None]) -> None:
                todo = iter(plan)
                pending: deque = deque()
                try:
                    for t in todo:
                        _check_cancel(cancel)
                        pending.append(pool.submit(run, work, t))
                        if len(pending) == 2 * workers:
                            break
                    while pending:
                        consume(pending.popleft().result())
                        next(step)
                        t = next(todo, None)
                        if t is not None:
                            _check_cancel(cancel)
                            pending.append(pool.submit(run, work, t))
                finally:
                    for f in pending:  # after a cancel or failure: tiles not yet started
                        f.cancel()

            yield parallel


def _check_cancel(cancel: Cancel | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("cancelled")


def _tile_input(x: np.ndarray, t: Tile, device: torch.device) -> torch.Tensor:
    """One haloed tile in the network's range, N x 1 x H x W."""
    return to_network(torch.from_numpy(x[t.hy0:t.hy1, t.hx0:t.hx1]).to(device))[None, None]


def _tile_pair(a: np.ndarray, b: np.ndarray, t: Tile, device: torch.device,
               dtype: torch.dtype) -> torch.Tensor:
    """One haloed tile of both sources as the conv stack's channels-last input "x"."""
    x = np.stack((a[t.hy0:t.hy1, t.hx0:t.hx1], b[t.hy0:t.hy1, t.hx0:t.hx1]), -1)
    return to_network(torch.from_numpy(x).to(device)).to(dtype).permute(2, 0, 1)[None]


class _Sums:
    """Per-channel moments of a level's conv outputs over the tile cores: each tile's
    mean and sum of squared deviations (:func:`_core_sums`), combined in float64
    (Chan et al.), in numpy."""

    def __init__(self):
        self.acc: dict[str, tuple] = {}

    @staticmethod
    def of(key: str, z: torch.Tensor, crop: tuple[slice, slice]) -> tuple[str, int, np.ndarray, np.ndarray]:
        """A tile's share: the moments of ``z``'s core."""
        return (key, *_core_sums(z, crop))

    def add(self, parts) -> None:
        for key, n, mean, m2 in parts:
            if key not in self.acc:
                self.acc[key] = (n, mean, m2)
                continue
            n0, mean0, m20 = self.acc[key]
            total = n0 + n
            delta = mean - mean0
            self.acc[key] = (total, mean0 + delta * (n / total), m20 + m2 + delta * delta * (n0 * n / total))

    def moments(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and (biased) variance, float64 tensors."""
        n, mean, m2 = self.acc[key]
        return torch.from_numpy(mean), torch.from_numpy(m2 / n)


# Channels per (haloed) pixel the cached reference scheme keeps for the whole image:
# two levels' raw sums of both paths.
REFERENCE_CACHE_CHANNELS = 4 * FEATURES
REFERENCE_CACHE_BYTES = 5 << 28  # 1.25 GiB: up to ~4.5 megapixels in fp32, ~9 in bf16


class Workspace:
    """Large buffers kept from one :func:`fuse_gray` call to the next, for a reference
    model's level cache (about 280 bytes a pixel). Memory touched for the first time
    costs page faults: on the project's 2-core machines 1.1 GB of cache for 4
    megapixels cost 0.5 s of system time a call, 8% of the run; kept, the next call
    of the same size or smaller touches no new page. A fuser keeps one for its
    lifetime (:class:`~pmgi_gui.core.fusion.PmgiFuser`). One call uses it at a time: a
    call that finds it in use allocates its own buffers."""

    def __init__(self):
        self._lock = threading.Lock()
        self._buffers: dict[str, torch.Tensor] = {}

    @contextmanager
    def claim(self) -> Iterator["Workspace | None"]:
        """This workspace for the duration, or None if another call holds it."""
        if not self._lock.acquire(blocking=False):
            yield None
            return
        try:
            yield self
        finally:
            self._lock.release()

    def buffer(self, name: str, numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``numel`` elements (uninitialised), reusing the buffer of that name if it is big
        enough; else it is freed before the new one is made, so only one is held."""
        kept = self._buffers.get(name)
        if kept is None or kept.numel() < numel or kept.dtype != dtype or kept.device != device:
            self._buffers.pop(name, None)
            del kept
            self._buffers[name] = torch.empty(numel, dtype=dtype, device=device)
        return self._buffers[name][:numel]

    def release(self) -> None:
        """Frees every buffer now."""
        self._buffers.clear()

    @property
    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self._buffers.values())


def _reference_tiled(stack: ConvStack, a: np.ndarray, b: np.ndarray, plan: list[Tile],
                     out: np.ndarray, each, device: torch.device, cached: bool,
                     workspace: Workspace | None = None) -> None:
    """Whole-image moments of a reference model over tiles, level by level (a level's
    moments depend on the normalisation of the levels before it), and the output.

    Without a cache, pass k recomputes levels 1..k-1 and the output pass all of them:
    3.4x the FLOPs of one conv-stack pass. ``cached``: each tile keeps raw conv sums
    (conv2 until conv3 is complete, conv3 until conv4 is, conv4 until the output),
    and every convolution's share of conv3 and conv4 is added in place as soon as its
    input is normalised; only conv1 is computed more than once: 1.13x the FLOPs of
    one pass, at most two levels (64 channels) cached at a time. A tile's halo (the
    receptive radius, 5) keeps conv3 exact one pixel beyond its core, conv2 two:
    what the 3x3 convolutions after them read.
    """
    dtype = stack.dtype
    moments: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def fold(name: str, sums: _Sums) -> None:
        # The cached scheme reads a level's raw weights only before its moments are
        # known, so every level is folded once they are.
        for p in "ab":
            mean, var = moments[f"{p}.{name}"] = sums.moments(f"{p}.{name}")
            stack.fold_level(p, name, mean.to(device), var.to(device))

    def raw_sums(name: str, f: dict, crop) -> list:
        # Each path's moments as soon as its level is computed, while it is in the caches.
        return [_Sums.of(f"{p}.{name}", stack.level(p, name, f, activate=False), crop) for p in "ab"]

    def level_pass(name: str, work) -> None:
        sums = _Sums()
        each(work, sums.add)
        fold(name, sums)

    def x(t: Tile) -> torch.Tensor:
        return _tile_pair(a, b, t, device, dtype)

    if not cached:
        for name in LEVELS:
            level_pass(name, lambda t, n=name: raw_sums(n, stack.features(x(t), n), t.crop()))

        def final(t: Tile) -> None:
            cy, cx = t.crop()
            out[t.y0:t.y1, t.x0:t.x1] = stack.forward_pair(x(t))[0, 0, cy, cx].cpu().numpy()

        each(final, lambda _: None)
        return

    # Two slabs hold every tile's raw sums of both paths, haloed: conv3's, and conv2's
    # until conv3 is complete, then conv4's in the same place. Two allocations, not
    # one per tile: per-tile tensors freed and made by worker threads fragmented the
    # heap by a quarter of the cache.
    sizes = [(t.hy1 - t.hy0) * (t.hx1 - t.hx0) for t in plan]
    starts = dict(zip(plan, np.cumsum([0] + sizes[:-1]).tolist()))
    numel = 2 * FEATURES * sum(sizes)
    slabs = {s: workspace.buffer(f"reference-{s}", numel, dtype, device) if workspace is not None
             else torch.empty(numel, dtype=dtype, device=device) for s in "AB"}

    def sums_at(k: str, t: Tile) -> torch.Tensor:
        """A tile's raw sums of conv k[1] of path k[0] (k = "a2" ... "b4"), N x C x H x W."""
        n = (t.hy1 - t.hy0) * (t.hx1 - t.hx0)
        at = (2 * starts[t] + (k[0] == "b") * n) * FEATURES
        slab = slabs["B" if k[1] == "3" else "A"][at:at + n * FEATURES]
        return slab.view(1, t.hy1 - t.hy0, t.hx1 - t.hx0, FEATURES).permute(0, 3, 1, 2)

    wf = dict(stack.fuse)
    scales: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def add_output(t: Tile, f: dict, keys) -> None:
        cy, cx = t.crop()
        y = sum(torch.mv(_pixels(f[k]), wf[k]).float() for k in keys)
        out[t.y0:t.y1, t.x0:t.x1] += y.view(f[keys[0]].shape[2:])[cy, cx].cpu().numpy()

    def normalised(t: Tile, k: str, in_place: bool = False) -> torch.Tensor:
        """lrelu((z - mean) / std) of a tile's raw sums of conv k[1], path k[0]: a new
        tensor, or in place where no later pass needs the raw sums."""
        if k not in scales:
            mean, var = moments[f"{k[0]}.conv{k[1]}"]
            r = torch.rsqrt(var + BN_EPS)
            scales[k] = tuple(v.to(device, dtype)[None, :, None, None] for v in (r, -mean * r))
        r, shift = scales[k]
        z = sums_at(k, t)
        return F.leaky_relu_(torch.addcmul(shift, z, r, out=z) if in_place else torch.addcmul(shift, z, r),
                             LRELU_SLOPE)

    def level_into(t: Tile, p: str, name: str, sources, f: dict) -> torch.Tensor:
        """Starts a tile's raw sums of a level with its bias and adds the given sources'
        shares, accumulated in place."""
        z = sums_at(p + name[-1], t)
        z.copy_(stack.bias(p, name).view(1, -1, 1, 1).expand_as(z))
        return add_shares(z, p, name, sources, f)

    def add_shares(z: torch.Tensor, p: str, name: str, sources, f: dict) -> torch.Tensor:
        for source in sources:
            w, pad = stack.part(p, name, source)
            _conv_add_(z, f[source], w, pad)
        return z

    def conv2(t: Tile):  # conv1 is known
        f = stack.features(x(t), "conv2")
        moments = []
        for p in "ab":
            moments.append(_Sums.of(f"{p}.conv2", level_into(t, p, "conv2", (p + "1",), f), t.crop()))
            level_into(t, p, "conv3", (p + "1",), f)
        add_output(t, f, ("a1", "b1"))
        return moments

    def transfer2(t: Tile):  # conv2 is known: its slot holds its activations from here
        f = {p + "2": normalised(t, p + "2", in_place=True) for p in "ab"}
        for p in "ab":
            add_shares(sums_at(p + "3", t), p, "conv3", (p + "2",), f)
        add_output(t, f, ("a2", "b2"))
        return raw_sums("transfer2", f, t.crop())

    def conv3(t: Tile):  # transfer2 is known: its share completes conv3; conv4 begins
        f = {p + "2": sums_at(p + "2", t).clone() for p in "ab"}  # conv4 takes the slot
        for p in "ab":
            f[f"t{p}2"] = stack.level(p, "transfer2", f)
        moments = [_Sums.of(f"{p}.conv3", add_shares(sums_at(p + "3", t), p, "conv3", (f"t{p}2",), f),
                            t.crop()) for p in "ab"]
        f.update(stack.features(x(t), "conv2"))  # conv1 again: cheaper than caching it
        for p in "ab":
            level_into(t, p, "conv4", (p + "1", p + "2"), f)
        return moments

    def transfer3(t: Tile):  # conv3 is known: its slot holds its activations from here
        f = {p + "3": normalised(t, p + "3", in_place=True) for p in "ab"}
        add_output(t, f, ("a3", "b3"))
        return raw_sums("transfer3", f, t.crop())

    def conv4(t: Tile):  # transfer3 is known: conv3's and transfer3's shares complete conv4
        f = {p + "3": sums_at(p + "3", t) for p in "ab"}
        for p in "ab":
            f[f"t{p}3"] = stack.level(p, "transfer3", f)
        return [_Sums.of(f"{p}.conv4", add_shares(sums_at(p + "4", t), p, "conv4", (p + "3", f"t{p}3"), f),
                         t.crop()) for p in "ab"]

    out[:] = 0
    level_pass("conv1", lambda t: raw_sums("conv1", stack.features(x(t), "conv1"), t.crop()))
    for name, work in (("conv2", conv2), ("transfer2", transfer2), ("conv3", conv3),
                       ("transfer3", transfer3), ("conv4", conv4)):
        level_pass(name, work)
        if name == "conv4":
            del slabs["B"]  # conv3's sums

    bias = float(stack.fuse_bias)

    def final(t: Tile) -> None:
        f = {p + "4": normalised(t, p + "4") for p in "ab"}
        add_output(t, f, ("a4", "b4"))
        y = out[t.y0:t.y1, t.x0:t.x1]
        np.tanh(y + bias, out=y)

    each(final, lambda _: None)


def fuse_gray(model: PMGI, a: np.ndarray, b: np.ndarray, *, device: torch.device | str = "cpu",
              tile: int = DEFAULT_TILE, progress: Progress | None = None,
              cancel: Cancel | None = None, precision: str = "fp32",
              reference_whole_pixels: int = REFERENCE_WHOLE_PIXELS,
              reference_cache_bytes: int = REFERENCE_CACHE_BYTES,
              workspace: Workspace | None = None) -> np.ndarray:
    """Run the network on two gray images (values 0..255, same H x W).

    Returns the network's tanh output, float32 H x W in [-1, 1]. ``progress(done,
    total)`` is called after every tile; ``cancel()`` is checked between tiles and
    raises :class:`Cancelled` when it returns true. ``precision="bf16"`` (CPU only)
    computes the convolutions in bfloat16: about 2x faster where the CPU has
    AVX-512 BF16, within about one gray level of fp32 (not exact; see
    benchmarks/bench_inference.py); ``"fp16"`` (CUDA only) in half precision,
    channels-last as on the CPU (not yet measured on a GPU: the benchmark reports its
    difference). A ``reference`` model runs whole up to ``reference_whole_pixels``;
    above, tiled, with its level sums cached while they fit in ``reference_cache_bytes``
    (see :func:`_reference_tiled`), in ``workspace``'s buffers if one is given.
    """
    if a.shape != b.shape or a.ndim != 2:
        raise PmgiError(f"the two sources must be gray images of one size, got {a.shape} and {b.shape}")
    device = torch.device(device)
    dtype = _compute_dtype(precision, device)
    h, w = a.shape
    plan = tiles(h, w, tile)
    # A reference model on an image of up to reference_whole_pixels runs whole, as the
    # released script does (~1.3 kB per pixel).
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
        stack = ConvStack(model.fold() if model.normalisation == "batch" else model, dtype).to(device)

        if model.normalisation == "reference" and not reference_whole:
            haloed = sum((t.hy1 - t.hy0) * (t.hx1 - t.hx0) for t in plan)
            cache_bytes = haloed * REFERENCE_CACHE_CHANNELS * stack.fuse_bias.element_size()
            cached = cache_bytes <= reference_cache_bytes
            with (workspace.claim() if workspace is not None else nullcontext()) as ws, \
                    _tile_runner(plan, device, cancel, step) as each:
                _reference_tiled(stack, a, b, plan, out, each, device, cached, ws)
            return out

        # fp32 whole-image reference: the network's own forward, the released script's
        # arithmetic to ~1e-7 (the conv stack's summed convolutions differ by ~3e-6).
        plain = model.normalisation == "reference" and dtype == torch.float32

        def work(t: Tile) -> None:
            if plain:
                y = model(_tile_input(a, t, device), _tile_input(b, t, device))
            else:  # a whole-image reference stack normalises each level with its own moments
                y = stack.forward_pair(_tile_pair(a, b, t, device, dtype))
            cy, cx = t.crop()
            out[t.y0:t.y1, t.x0:t.x1] = y[0, 0, cy, cx].cpu().numpy()

        with _tile_runner(plan, device, cancel, step) as each:
            each(work, lambda _: None)
    return out


def _compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision not in PRECISIONS:
        raise PmgiError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16":
        if device.type != "cpu":
            raise PmgiError("precision bf16 is for the CPU; on a CUDA GPU use fp16")
        return torch.bfloat16
    if precision == "fp16":
        if device.type != "cuda":
            raise PmgiError("precision fp16 is for CUDA GPUs; on the CPU use bf16")
        return torch.float16
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
