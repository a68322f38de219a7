"""Small builders shared by tests (random checkpoints, synthetic images)."""

from __future__ import annotations

import numpy as np
import torch

from pmgi_gui.core.checkpoints import save_checkpoint
from pmgi_gui.core.network import PMGI
from pmgi_gui.core.tasks import get_task


def random_model(normalisation: str = "batch", seed: int = 0) -> PMGI:
    """A PMGI with random weights and, for batch norm, random running statistics."""
    torch.manual_seed(seed)
    model = PMGI(normalisation)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                # He-scaled weights keep activations of a trained network's order.
                fan_in = m.weight[0].numel()
                m.weight.normal_(0, (2.0 / fan_in) ** 0.5)
                m.bias.normal_(0, 0.1)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.2, 2.0)
    return model.eval()


def random_checkpoint(path, task: str = "ir-vis", normalisation: str = "batch", seed: int = 0):
    return save_checkpoint(path, {"default": random_model(normalisation, seed)}, task=task,
                           lambdas=get_task(task).lambdas, label="random test weights")


def gradient_variant(path, base, g: float, seed: int, lambdas=None, task: str = "ir-vis"):
    """A random-weight checkpoint that says it was fine-tuned from ``base`` with every
    gradient weight times ``g`` (or with ``lambdas``): a member of base's family."""
    from pmgi_gui.core.family import scaled_lambdas

    return save_checkpoint(
        path, {"default": random_model("batch", seed)}, task=task,
        lambdas=lambdas or scaled_lambdas(base.lambdas, g), label=f"gradient x{g}",
        extra={"training": {"init": {"kind": "checkpoint", "checkpoint": base.name,
                                     "sha256": base.sha256()}}})


def scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random gray scene with edges, uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = 127 + 60 * np.sin(x / 7.0 + seed) * np.cos(y / 11.0) + rng.normal(0, 12, (h, w))
    img[h // 3: h // 2, w // 4: w // 2] += 50
    return np.clip(img, 0, 255).astype(np.uint8)
