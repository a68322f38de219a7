"""Checkpoint families: a task's ``paper`` checkpoint and the variants fine-tuned from it
with the gradient (texture) weights scaled, blended linearly in weight space into a
continuous setting.

A variant is recognised from its manifest alone: it was trained from the base
(``training.init.sha256`` is the base's weights hash) and its lambdas are the base's
with every gradient weight multiplied by one factor and the intensity weights kept.
The continuous setting is that factor, the *gradient scale* g: between the base
(g = 1) and a variant (g = gv) the weights are blended with
t = log(g) / log(gv), so equal steps of the slider are equal ratios of the weights.
The study in weights/README.md measures the task's metrics along these paths.

Fine-tuning moves a network whatever the weights (the learning rate starts again where
the base's schedule had annealed), so a variant differs from the base by that drift as
well as by g. A variant fine-tuned with the base's own lambdas (g = 1, same recipe)
carries the same drift: where one is installed it is the family's g = 1 member and the
base itself stands apart, so that moving along the family changes g alone.

A variant whose manifest says ``"family": {"continuous": false}`` is left out: its
task's study found no smooth path, so it is offered as a checkpoint of its own only.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .checkpoints import DEFAULT_MODEL, Checkpoint, list_checkpoints
from .errors import CheckpointError
from .tasks import Lambdas, get_task

if TYPE_CHECKING:
    from .network import PMGI

__all__ = ["Family", "family_for", "gradient_scale", "blend_models", "BlendedCheckpoint"]

# Two gradient scales closer than this are the same point (manifests store floats).
_SAME = 1e-6


def gradient_scale(base: Lambdas, other: Lambdas) -> float | None:
    """The factor g with ``other`` = ``base`` with both gradient weights times g and the
    intensity weights unchanged, or None when ``other`` is not such a rescaling."""
    if not (math.isclose(base.a_int, other.a_int, rel_tol=1e-6, abs_tol=1e-12)
            and math.isclose(base.b_int, other.b_int, rel_tol=1e-6, abs_tol=1e-12)):
        return None
    ratios = []
    for b, o in ((base.a_grad, other.a_grad), (base.b_grad, other.b_grad)):
        if b == 0:
            if o != 0:
                return None
        else:
            ratios.append(o / b)
    if not ratios or ratios[0] <= 0 or any(not math.isclose(r, ratios[0], rel_tol=1e-6) for r in ratios):
        return None
    return ratios[0]


def scaled_lambdas(base: Lambdas, g: float) -> Lambdas:
    return Lambdas(base.a_int, base.a_grad * g, base.b_int, base.b_grad * g)


def blend_models(m0: PMGI, m1: PMGI, t: float) -> PMGI:
    """(1 - t) * m0 + t * m1, tensor by tensor (weights, biases and batch norm's
    running statistics), as a new network in eval mode."""
    from .network import PMGI

    if m0.normalisation != m1.normalisation:
        raise CheckpointError("only networks with the same normalisation can be blended")
    s0, s1 = m0.state_dict(), m1.state_dict()
    out = {k: v if k.endswith("num_batches_tracked") else (1 - t) * v + t * s1[k]
           for k, v in s0.items()}
    model = PMGI(m0.normalisation)
    model.load_state_dict(out)
    return model.eval()


@dataclass
class BlendedCheckpoint(Checkpoint):
    """A point between two members of a family: behaves as a checkpoint (the fuser,
    reports and manifests see a name, lambdas and a hash) but lives in memory."""

    base: Checkpoint | None = None
    other: Checkpoint | None = None
    t: float = 0.0
    scale: float = 1.0

    def sha256(self, key: str | None = None) -> str:
        h = hashlib.sha256(f"{self.base.sha256()}:{self.other.sha256()}:{self.t:.6f}".encode())
        return h.hexdigest()

    def load_model(self, band: int | None = None) -> PMGI:
        return blend_models(self.base.load_model(band), self.other.load_model(band), self.t)


@dataclass
class Family:
    """A base checkpoint and its gradient-scaled variants, sorted by scale."""

    base: Checkpoint
    members: list[tuple[float, Checkpoint]] = field(default_factory=list)  # includes (1.0, base)

    @property
    def scales(self) -> list[float]:
        return [g for g, _ in self.members]

    @property
    def range(self) -> tuple[float, float]:
        return self.members[0][0], self.members[-1][0]

    def member_at(self, g: float) -> Checkpoint | None:
        for s, ckpt in self.members:
            if abs(math.log(s) - math.log(g)) < _SAME:
                return ckpt
        return None

    def at(self, g: float) -> Checkpoint:
        """The checkpoint for gradient scale ``g``: a member where there is one, else the
        weights blended between the two members on either side (log scale)."""
        lo, hi = self.range
        if not lo - _SAME <= g <= hi + _SAME or g <= 0:
            raise CheckpointError(f"gradient scale {g:g} is outside this family's range "
                                  f"{lo:g}..{hi:g}")
        g = min(max(g, lo), hi)
        exact = self.member_at(g)
        if exact is not None:
            return exact
        for (g0, c0), (g1, c1) in zip(self.members, self.members[1:]):
            if g0 <= g <= g1:
                t = (math.log(g) - math.log(g0)) / (math.log(g1) - math.log(g0))
                lambdas = scaled_lambdas(self.base.lambdas, g)
                task = get_task(self.base.task)
                return BlendedCheckpoint(
                    path=self.base.path.parent / f"{self.base.name}@g{g:.3g}",
                    task=self.base.task, normalisation=self.base.normalisation,
                    lambdas=lambdas,
                    label=f"{self.base.label}, gradient weights x{g:.2f} (blend of "
                          f"{c0.name} and {c1.name})",
                    input_a=self.base.input_a, models=dict(self.base.models),
                    provenance={"source": "linear blend of two checkpoints' weights",
                                "members": [c0.name, c1.name], "t": round(t, 6)},
                    extra={"blend": {"of": [c0.name, c1.name], "t": t, "gradient_scale": g,
                                     "lambdas": lambdas.describe(task)}},
                    base=c0, other=c1, t=t, scale=g)
        raise AssertionError("unreachable: g is within the range")  # pragma: no cover


def _init_sha(ckpt: Checkpoint) -> str | None:
    init = (ckpt.extra.get("training") or {}).get("init") or {}
    return init.get("sha256") if init.get("kind") == "checkpoint" else None


def family_for(ckpt: Checkpoint, candidates: list[Checkpoint] | None = None, *,
               as_base: bool = False) -> Family | None:
    """The family ``ckpt`` belongs to (as its base or as a variant), from ``candidates``
    (default: the installed checkpoints of its task); None when it has no variants.
    Only single-model checkpoints of one normalisation form a family. A base that stands
    apart from its family (a fine-tuned sibling is the centre) belongs to it only
    ``as_base`` (``paper@g1.5`` names the family of paper)."""
    if DEFAULT_MODEL not in ckpt.models:
        return None
    pool = [c for c in (candidates if candidates is not None else list_checkpoints(ckpt.task))
            if c.task == ckpt.task and DEFAULT_MODEL in c.models]
    by_sha = {c.sha256(): c for c in pool}
    by_sha.setdefault(ckpt.sha256(), ckpt)
    base = by_sha.get(_init_sha(ckpt)) if _init_sha(ckpt) in by_sha else ckpt
    members: dict[float, Checkpoint] = {}
    for c in sorted(by_sha.values(), key=lambda c: c.name):
        if c is base or _init_sha(c) != base.sha256() or c.normalisation != base.normalisation:
            continue
        if (c.extra.get("family") or {}).get("continuous") is False:
            continue
        g = gradient_scale(base.lambdas, c.lambdas)
        if g is None:
            continue
        members.setdefault(1.0 if abs(math.log(g)) < _SAME else round(g, 9), c)
    members.setdefault(1.0, base)  # no fine-tuned sibling at g = 1: the base is the centre
    if len(members) < 2:
        return None
    if not any(c.sha256() == ckpt.sha256() for c in members.values()) and not (
            as_base and base.sha256() == ckpt.sha256()):
        return None
    return Family(base, sorted(members.items()))
