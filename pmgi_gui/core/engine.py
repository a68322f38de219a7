"""Running the network: device choice, tiled inference with progress and cancel,
output scaling.

Tiles carry a halo of the network's receptive radius, so that for a conv stack
(``batch`` folded, or ``none``) the tiled result equals the whole-image result:
zero padding at a tile's inner edge only disturbs pixels within that radius, and
those are cut away. Memory is bounded by the tile size, not the image size.

A ``reference`` checkpoint normalises every layer with the moments of the whole
image. They are gathered over tiles level by level (a layer's moments depend on
the normalisation of the layers before it), then folded into the convolutions, and
the final pass is an ordinary conv-stack pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch.nn import functional as F

from .errors import Cancelled, PmgiError
from .spec import DEFAULT_TILE, DEVICES  # re-exported: torch-free home
from .network import LEVELS, LRELU_SLOPE, PMGI, RECEPTIVE_RADIUS, Moments, from_network, to_network

__all__ = ["DEVICES", "DEFAULT_TILE", "choose_device", "fuse_gray", "to_uint8", "tiles",
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
    if tile < 1:
        raise PmgiError(f"tile size must be positive, got {tile}")
    out = []
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            out.append(Tile(y0, y1, x0, x1, max(0, y0 - halo), min(h, y1 + halo),
                            max(0, x0 - halo), min(w, x1 + halo)))
    return out


class ConvStack:
    """A conv-stack PMGI (``none``-normalised, or folded) laid out for inference.

    Computes exactly the network's function with fewer memory passes: each path's
    features live in one preallocated buffer ``[t2, x1, x2, x3, t3, x4]`` (16
    channels each) that every layer's activation writes into, so the dense
    concatenations are slices, not copies (the input channels of conv3 are
    permuted to match). Layer 1 of both paths is one convolution of (a, b), since
    concat(a, a, b) repeats a; the transfer blocks of both paths share two
    convolutions; the 128-channel output concatenation becomes one 1x1
    convolution per path buffer (zero weights on the transfer slices).
    """

    def __init__(self, model: PMGI):
        if model.normalisation != "none":
            raise ValueError("ConvStack needs a none-normalised (folded) model")
        with torch.no_grad():
            w = {(p, n): (getattr(getattr(model, p), n).conv.weight.detach(),
                          getattr(getattr(model, p), n).conv.bias.detach())
                 for p in "ab" for n in LEVELS}
            wa, wb = w["a", "conv1"][0], w["b", "conv1"][0]
            # Path A sees (a, a, b), path B (b, b, a): fold the repeated input.
            self.w1 = torch.cat([torch.stack([wa[:, 0] + wa[:, 1], wa[:, 2]], 1),
                                 torch.stack([wb[:, 2], wb[:, 0] + wb[:, 1]], 1)]).contiguous()
            self.b1 = torch.cat([w["a", "conv1"][1], w["b", "conv1"][1]])
            self.w2 = {p: w[p, "conv2"] for p in "ab"}
            # conv3's input order is (x1, x2, t2); the buffer holds (t2, x1, x2).
            self.w3 = {p: (torch.cat([w[p, "conv3"][0][:, 32:], w[p, "conv3"][0][:, :32]], 1)
                           .contiguous(), w[p, "conv3"][1]) for p in "ab"}
            self.w4 = {p: w[p, "conv4"] for p in "ab"}
            # Both transfer blocks read concat(A, B): split by source path, stack by target.
            self.t = {}
            for n in ("transfer2", "transfer3"):
                wt = torch.cat([w["a", n][0], w["b", n][0]])  # 32 out, 32 in
                self.t[n] = (wt[:, :16].contiguous(), wt[:, 16:].contiguous(),
                             torch.cat([w["a", n][1], w["b", n][1]]))
            wf = model.fuse.weight.detach()[0, :, 0, 0]  # (a1, b1, a2, b2, a3, b3, a4, b4)
            self.wf = {}
            for i, p in enumerate("ab"):
                z = torch.zeros(1, 96, 1, 1, dtype=wf.dtype, device=wf.device)
                for k, off in enumerate((16, 32, 48, 80)):
                    z[0, off:off + 16, 0, 0] = wf[(2 * k + i) * 16:(2 * k + i + 1) * 16]
                self.wf[p] = z
            self.bf = model.fuse.bias.detach()

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        conv, act = F.conv2d, torch._C._nn.leaky_relu  # leaky_relu with out=
        n, _, h, w = a.shape
        buf = {p: a.new_empty((n, 96, h, w)) for p in "ab"}
        z = conv(torch.cat((a, b), 1), self.w1, self.b1, padding=2)
        act(z[:, :16], LRELU_SLOPE, out=buf["a"][:, 16:32])
        act(z[:, 16:], LRELU_SLOPE, out=buf["b"][:, 16:32])
        del z
        for p in "ab":
            act(conv(buf[p][:, 16:32], *self.w2[p], padding=1), LRELU_SLOPE, out=buf[p][:, 32:48])
        self._transfer("transfer2", buf, 32, 0)
        for p in "ab":
            act(conv(buf[p][:, 0:48], *self.w3[p], padding=1), LRELU_SLOPE, out=buf[p][:, 48:64])
        self._transfer("transfer3", buf, 48, 64)
        for p in "ab":
            act(conv(buf[p][:, 16:80], *self.w4[p], padding=1), LRELU_SLOPE, out=buf[p][:, 80:96])
        y = conv(buf["a"], self.wf["a"], self.bf)
        y += conv(buf["b"], self.wf["b"])
        return torch.tanh_(y)

    def _transfer(self, name: str, buf: dict, src: int, dst: int) -> None:
        wa, wb, bias = self.t[name]
        z = F.conv2d(buf["a"][:, src:src + 16], wa, bias)
        z += F.conv2d(buf["b"][:, src:src + 16], wb)
        torch._C._nn.leaky_relu(z[:, :16], LRELU_SLOPE, out=buf["a"][:, dst:dst + 16])
        torch._C._nn.leaky_relu(z[:, 16:], LRELU_SLOPE, out=buf["b"][:, dst:dst + 16])

    def to(self, device: torch.device) -> "ConvStack":
        move = lambda x: x.to(device)  # noqa: E731
        for attr in ("w1", "b1", "bf"):
            setattr(self, attr, move(getattr(self, attr)))
        for d in (self.w2, self.w3, self.w4, self.t, self.wf):
            for k, v in d.items():
                d[k] = tuple(map(move, v)) if isinstance(v, tuple) else move(v)
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


def _check_cancel(cancel: Cancel | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("cancelled")


def _tile_input(x: np.ndarray, t: Tile, device: torch.device) -> torch.Tensor:
    """One haloed tile in the network's range; converting per tile keeps memory
    bounded by the tile, not the image."""
    return to_network(torch.from_numpy(x[t.hy0:t.hy1, t.hx0:t.hx1]).to(device))[None, None]


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
              cancel: Cancel | None = None,
              reference_whole_pixels: int = REFERENCE_WHOLE_PIXELS) -> np.ndarray:
    """Run the network on two gray images (values 0..255, same H x W).

    Returns the network's tanh output, float32 H x W in [-1, 1]. ``progress(done,
    total)`` is called after every tile; ``cancel()`` is checked between tiles and
    raises :class:`Cancelled` when it returns true.
    """
    if a.shape != b.shape or a.ndim != 2:
        raise PmgiError(f"the two sources must be gray images of one size, got {a.shape} and {b.shape}")
    device = torch.device(device)
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
        run = model if model.normalisation == "reference" else ConvStack(model).to(device)
        for t in plan:
            _check_cancel(cancel)
            y = run(_tile_input(a, t, device), _tile_input(b, t, device))
            cy, cx = t.crop()
            out[t.y0:t.y1, t.x0:t.x1] = y[0, 0, cy, cx].float().cpu().numpy()
            next(step)
    return out


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
