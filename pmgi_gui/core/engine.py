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

from .errors import Cancelled, PmgiError
from .network import LEVELS, PMGI, RECEPTIVE_RADIUS, Moments, from_network, to_network

__all__ = ["DEVICES", "DEFAULT_TILE", "choose_device", "fuse_gray", "to_uint8", "tiles",
           "Progress", "Cancel"]

DEVICES = ("auto", "cpu", "cuda", "mps")
DEFAULT_TILE = 512
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
              cancel: Cancel | None = None) -> np.ndarray:
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
    reference_whole = model.normalisation == "reference" and len(plan) == 1
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
        for t in plan:
            _check_cancel(cancel)
            y = model(_tile_input(a, t, device), _tile_input(b, t, device))
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
