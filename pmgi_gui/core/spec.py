"""Plain values that name what the network and the engine can be, importable without
torch: the normalisation kinds of a checkpoint, the devices, the default tile and the precisions.

``network.py`` and ``engine.py`` re-export them. Code that only lists, validates or
offers these (the checkpoint registry, the settings, the window at start-up) imports
them from here, so that opening the window does not wait for torch (about 1.3 s on a
2-core machine; see benchmarks/bench_startup.py).
"""

from __future__ import annotations

__all__ = ["NORMALISATIONS", "DEVICES", "DEFAULT_TILE", "PRECISIONS"]

NORMALISATIONS = ("reference", "batch", "none")
DEVICES = ("auto", "cpu", "cuda", "mps")
DEFAULT_TILE = 256
# Arithmetic of the convolutions: fp32 (exact), or reduced and approximate, faster:
# bf16 on the CPU (where it has AVX-512 BF16), fp16 on a CUDA GPU.
PRECISIONS = ("fp32", "bf16", "fp16")
