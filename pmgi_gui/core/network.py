"""The PMGI network (Zhang et al., AAAI 2020) and its normalisation kinds.

Two paths, A and B, of identical shape. Path A sees concat(a, a, b), path B
concat(b, b, a). Dense reuse inside each path, two pathwise transfer blocks
(1x1 convolutions over both paths' features), and a 1x1 output convolution over
the eight path features followed by tanh. 41,633 weights and biases.

Normalisation is a property of a checkpoint:

``reference``
    every layer normalised with the moments of the image being fused (biased
    variance over N, H, W), gamma = 1, beta = 0, eps = 1e-5: what the authors'
    released test script does, and what their published results come from.
``batch``
    trained batch norm; for inference the running statistics are folded into
    the preceding convolution (:meth:`PMGI.fold`), giving a pure conv stack.
``none``
    conv + bias + LeakyReLU (the official pan-sharpening checkpoints, and any
    folded model).

Once a ``reference`` model's moments are known for an image, the model is also
a pure conv stack for that image (``fold(moments)``); the tiled engine relies on
this.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .spec import NORMALISATIONS  # re-exported: its torch-free home

__all__ = [
    "NORMALISATIONS",
    "LAYERS",
    "LEVELS",
    "BN_EPS",
    "LRELU_SLOPE",
    "RECEPTIVE_RADIUS",
    "PMGI",
    "Moments",
    "to_network",
    "from_network",
]

BN_EPS = 1e-5
LRELU_SLOPE = 0.2
# 5x5 + three 3x3 convolutions along the longest path; 1x1 layers add nothing.
RECEPTIVE_RADIUS = 2 + 1 + 1 + 1

# (name, kernel, in_channels) of each normalised layer of one path, in the order
# of their dependence: a layer's moments depend on every earlier level's.
LAYERS = (
    ("conv1", 5, 3),
    ("conv2", 3, 16),
    ("transfer2", 1, 32),
    ("conv3", 3, 48),
    ("transfer3", 1, 32),
    ("conv4", 3, 64),
)
LEVELS = tuple(name for name, _, _ in LAYERS)
FEATURES = 16


def to_network(v: torch.Tensor) -> torch.Tensor:
    """Gray values 0..255 to the network's input range [-1, 1]."""
    return (v - 127.5) / 127.5


def from_network(y: torch.Tensor) -> torch.Tensor:
    """The network's tanh output back to gray values (unclipped)."""
    return y * 127.5 + 127.5


@dataclass
class Moments:
    """Per-channel mean and biased variance of each normalised layer's conv output,
    keyed ``"a.conv1"`` ... ``"b.conv4"``: what ``reference`` normalisation needs."""

    mean: dict[str, torch.Tensor]
    var: dict[str, torch.Tensor]


class _Unit(nn.Module):
    """One convolution with its optional batch norm (the TF scope ``layerN``)."""

    def __init__(self, kernel: int, in_channels: int, out_channels: int, batch_norm: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS) if batch_norm else None


class _Path(nn.Module):
    def __init__(self, batch_norm: bool):
        super().__init__()
        for name, kernel, cin in LAYERS:
            setattr(self, name, _Unit(kernel, cin, FEATURES, batch_norm))


class PMGI(nn.Module):
    """The PMGI fusion network.

    ``forward(a, b)`` takes two N x 1 x H x W tensors in [-1, 1] (see
    :func:`to_network`) and returns the fused N x 1 x H x W tanh output.
    """

    def __init__(self, normalisation: str = "batch"):
        super().__init__()
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {normalisation!r}; expected one of {NORMALISATIONS}")
        self.normalisation = normalisation
        bn = normalisation == "batch"
        self.a = _Path(bn)
        self.b = _Path(bn)
        self.fuse = nn.Conv2d(8 * FEATURES, 1, 1)

    # -- forward -----------------------------------------------------------------
    def _unit(self, path: str, name: str, x: torch.Tensor, moments: Moments | None,
              record: Moments | None, collect) -> torch.Tensor:
        unit: _Unit = getattr(getattr(self, path), name)
        z = unit.conv(x)
        if self.normalisation == "batch":
            z = unit.bn(z)
        elif self.normalisation == "reference":
            key = f"{path}.{name}"
            if moments is not None and key in moments.mean:
                mean, var = moments.mean[key], moments.var[key]
            else:
                if collect is not None:
                    collect(key, z)
                var, mean = torch.var_mean(z, dim=(0, 2, 3), correction=0)
            if record is not None:
                record.mean[key], record.var[key] = mean, var
            z = (z - mean[:, None, None]) * torch.rsqrt(var + BN_EPS)[:, None, None]
        return F.leaky_relu(z, LRELU_SLOPE)

    def forward(self, a: torch.Tensor, b: torch.Tensor, moments: Moments | None = None,
                record: Moments | None = None, collect=None) -> torch.Tensor:
        """Fuse. For ``reference`` models: ``moments`` (if given) replaces the
        per-image moments layer by layer, ``record`` receives the moments used, and
        ``collect(key, z)`` sees each conv output whose moments were not given (the
        tiled engine gathers whole-image moments with it and may stop the pass)."""
        u = lambda p, n, x: self._unit(p, n, x, moments, record, collect)  # noqa: E731
        a1 = u("a", "conv1", torch.cat((a, a, b), 1))
        b1 = u("b", "conv1", torch.cat((b, b, a), 1))
        a2 = u("a", "conv2", a1)
        b2 = u("b", "conv2", b1)
        # Both transfer blocks see the two paths in the same order, A then B.
        ab2 = torch.cat((a2, b2), 1)
        ta2 = u("a", "transfer2", ab2)
        tb2 = u("b", "transfer2", ab2)
        a3 = u("a", "conv3", torch.cat((a1, a2, ta2), 1))
        b3 = u("b", "conv3", torch.cat((b1, b2, tb2), 1))
        ab3 = torch.cat((a3, b3), 1)
        ta3 = u("a", "transfer3", ab3)
        tb3 = u("b", "transfer3", ab3)
        a4 = u("a", "conv4", torch.cat((a1, a2, a3, ta3), 1))
        b4 = u("b", "conv4", torch.cat((b1, b2, b3, tb3), 1))
        # The transfer outputs are not part of the final concatenation.
        return torch.tanh(self.fuse(torch.cat((a1, b1, a2, b2, a3, b3, a4, b4), 1)))

    # -- folding -----------------------------------------------------------------
    @torch.no_grad()
    def fold(self, moments: Moments | None = None) -> "PMGI":
        """A ``none``-normalised copy computing the same function.

        ``batch``: the running statistics and affine parameters are folded into
        each convolution. ``reference``: ``moments`` (of one image) are folded in,
        with gamma = 1 and beta = 0. ``none``: a plain copy.
        """
        folded = PMGI("none").to(self.fuse.weight.device, self.fuse.weight.dtype)
        folded.fuse.load_state_dict(self.fuse.state_dict())
        for path in ("a", "b"):
            for name in LEVELS:
                src: _Unit = getattr(getattr(self, path), name)
                dst: _Unit = getattr(getattr(folded, path), name)
                w, bias = src.conv.weight, src.conv.bias
                if self.normalisation == "batch":
                    scale = src.bn.weight * torch.rsqrt(src.bn.running_var + BN_EPS)
                    shift = src.bn.bias - src.bn.running_mean * scale
                elif self.normalisation == "reference":
                    if moments is None:
                        raise ValueError("folding a reference model needs the image's moments")
                    key = f"{path}.{name}"
                    scale = torch.rsqrt(moments.var[key] + BN_EPS)
                    shift = -moments.mean[key] * scale
                else:
                    scale, shift = torch.ones_like(bias), torch.zeros_like(bias)
                dst.conv.weight.copy_(w * scale[:, None, None, None])
                dst.conv.bias.copy_(bias * scale + shift)
        return folded.eval()
