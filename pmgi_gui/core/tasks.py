"""The five fusion tasks: roles of the two inputs, which one is A, the paper's loss
weights (lambdas) and the default checkpoint.

A is always the network's first input (path A); the lambdas are those of the
authors' released code (PMGI_REFERENCE.md, "Loss").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import PmgiError

__all__ = ["Lambdas", "FusionTask", "TASKS", "TASK_NAMES", "get_task"]


@dataclass(frozen=True)
class Lambdas:
    """Weights of the four loss terms: intensity and gradient of A and of B."""

    a_int: float
    a_grad: float
    b_int: float
    b_grad: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Lambdas":
        try:
            return cls(*(float(d[k]) for k in ("a_int", "a_grad", "b_int", "b_grad")))
        except (KeyError, TypeError, ValueError) as exc:
            raise PmgiError(f"lambdas need a_int, a_grad, b_int, b_grad as numbers, got {d!r}") from exc

    def describe(self, task: "FusionTask") -> str:
        return (f"{task.role_a} intensity {self.a_int:g}, gradient {self.a_grad:g}; "
                f"{task.role_b} intensity {self.b_int:g}, gradient {self.b_grad:g}")


@dataclass(frozen=True)
class FusionTask:
    name: str
    title: str
    role_a: str
    role_b: str
    # File stems of the two sources in a pair folder (layout of the shared data).
    stem_a: str
    stem_b: str
    lambdas: Lambdas
    default_checkpoint: str = "paper"


TASKS: dict[str, FusionTask] = {
    t.name: t
    for t in (
        FusionTask("ir-vis", "Infrared + visible", "infrared", "visible", "ir", "vis",
                   Lambdas(a_int=1, a_grad=4, b_int=0.3, b_grad=5)),
        FusionTask("multi-exposure", "Multi-exposure", "under-exposed", "over-exposed",
                   "under", "over", Lambdas(a_int=1.5, a_grad=16, b_int=1.5, b_grad=16)),
        FusionTask("medical", "Medical PET + MRI", "PET", "MRI", "pet", "mri",
                   Lambdas(a_int=1, a_grad=0, b_int=1, b_grad=300)),
        FusionTask("multi-focus", "Multi-focus", "near focus", "far focus", "near", "far",
                   Lambdas(a_int=2, a_grad=3, b_int=2, b_grad=3)),
        FusionTask("pan-sharpening", "Pan-sharpening", "multispectral", "panchromatic",
                   "ms", "pan", Lambdas(a_int=1, a_grad=0, b_int=0, b_grad=2)),
    )
}
TASK_NAMES = tuple(TASKS)


def get_task(name: str) -> FusionTask:
    try:
        return TASKS[name]
    except KeyError:
        raise PmgiError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}") from None
