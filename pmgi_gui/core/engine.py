"""Running the network: device choice, gray in / gray out, output scaling."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .errors import PmgiError
from .network import PMGI, from_network, to_network

__all__ = ["DEVICES", "choose_device", "fuse_gray", "to_uint8", "Progress"]

DEVICES = ("auto", "cpu", "cuda", "mps")
Progress = Callable[[int, int], None]


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


def fuse_gray(model: PMGI, a: np.ndarray, b: np.ndarray, *, device: torch.device | str = "cpu",
              progress: Progress | None = None) -> np.ndarray:
    """Run the network on two gray images (values 0..255, same H x W).

    Returns the network's tanh output, float32 H x W in [-1, 1].
    """
    if a.shape != b.shape or a.ndim != 2:
        raise PmgiError(f"the two sources must be gray images of one size, got {a.shape} and {b.shape}")
    device = torch.device(device)
    model = model.to(device).eval()
    with torch.inference_mode():
        ta = to_network(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))
        tb = to_network(torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32)))
        y = model(ta[None, None].to(device), tb[None, None].to(device))
    if progress is not None:
        progress(1, 1)
    return y[0, 0].float().cpu().numpy()


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
