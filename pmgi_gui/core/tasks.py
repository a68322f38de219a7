"""The five fusion tasks: roles of the two inputs, which one is A, the paper's loss
weights (lambdas), the default checkpoint, and the colour/band pipeline that turns
two real images into the network's gray inputs and its output back into an image.

A is always the network's first input (path A); the lambdas are those of the
authors' released code (PMGI_REFERENCE.md, "Loss").

Pipelines (:func:`fuse_pair`) take any gray fusion method ``gray_fuse(a, b, band)``
(PMGI or a classical baseline; gray float32 0..255 in and out) so that every
method is compared on the same channels:

- ir-vis, multi-focus: the luma is fused; a colour source keeps its colour
  (full-range YCbCr; chroma of two colour sources by the |C-128| rule).
- multi-exposure: studio-range YCbCr as the released scripts; Y fused, chroma by
  the |C-128| rule.
- medical: PET colour + MRI gray through linear IHS. Range-preserving: the
  network sees I/sqrt(3) (the mean of R, G, B, never above 255), not the clipped
  I of the released scripts, so bright PET does not saturate; the fused
  intensity is scaled back and recombined with the PET's own v1, v2. A gray PET
  is first shown in a PET colour map (``PipelineOptions.pet_colormap``).
- pan-sharpening: MS (3..8 bands) upsampled x4 bicubic to the PAN grid, each
  band fused with PAN, then the released base/detail histogram matching (PMGI
  only); band order and bit depth are kept.

Each pipeline is split at the network (``_Plan``): :func:`network_inputs` gives
the gray inputs A, B alone, so that training sees exactly what inference feeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .errors import ImageError, PmgiError

__all__ = ["Lambdas", "FusionTask", "TASKS", "TASK_NAMES", "get_task", "PipelineOptions",
           "GrayFuse", "PanFuse", "check_pair", "gray_fusions_needed", "network_inputs",
           "fuse_pair", "PAN_RATIO", "MS_BANDS"]


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
        return (f"{task.role_a} intensity {self.a_int:.4g}, gradient {self.a_grad:.4g}; "
                f"{task.role_b} intensity {self.b_int:.4g}, gradient {self.b_grad:.4g}")


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


# -- pipelines -------------------------------------------------------------------

GrayFuse = Callable[[np.ndarray, np.ndarray, "int | None"], np.ndarray]
PanFuse = Callable[[np.ndarray, np.ndarray], np.ndarray]
PAN_RATIO = 4
MS_BANDS = range(3, 9)


@dataclass(frozen=True)
class PipelineOptions:
    pet_colormap: str = "hot"
    # "released" reproduces the authors' clipped intensity, for comparison only.
    medical_ihs: str = "range-preserving"


def _bands(x: np.ndarray) -> int:
    return 1 if x.ndim == 2 else x.shape[2]


def _check_picture(task: FusionTask, role: str, x: np.ndarray) -> None:
    if _bands(x) not in (1, 2, 3, 4):
        raise ImageError(f"the {role} image has {_bands(x)} bands; {task.title} needs a gray or "
                         "RGB image")


def check_pair(task_name: str, a: np.ndarray, b: np.ndarray) -> None:
    """Explain, as a user would want to read it, why two sources cannot be fused."""
    task = get_task(task_name)
    if task.name == "pan-sharpening":
        if _bands(a) not in MS_BANDS:
            raise ImageError(f"the multispectral image has {_bands(a)} band(s); "
                             f"pan-sharpening needs {MS_BANDS.start} to {MS_BANDS.stop - 1}")
        if _bands(b) != 1:
            raise ImageError(f"the panchromatic image has {_bands(b)} bands; it must have one")
        (h, w), (ph, pw) = a.shape[:2], b.shape[:2]
        if (ph, pw) != (PAN_RATIO * h, PAN_RATIO * w):
            raise ImageError(f"the panchromatic image must be exactly {PAN_RATIO}x the multispectral "
                             f"size: MS is {w}x{h}, so PAN should be {PAN_RATIO * w}x{PAN_RATIO * h}, "
                             f"but it is {pw}x{ph}")
        return
    _check_picture(task, task.role_a, a)
    _check_picture(task, task.role_b, b)
    if a.shape[:2] != b.shape[:2]:
        raise ImageError(f"the {task.role_a} image is {a.shape[1]}x{a.shape[0]} but the "
                         f"{task.role_b} image is {b.shape[1]}x{b.shape[0]}; they must be the "
                         "same size (registered)")


def gray_fusions_needed(task_name: str, a: np.ndarray) -> int:
    """How many gray fusions :func:`fuse_pair` will run (one per MS band, else one)."""
    return _bands(a) if task_name == "pan-sharpening" else 1


def _colour(x: np.ndarray) -> np.ndarray | None:
    """RGB float32 0..255 of a colour source, or None for a gray one."""
    from .colour import as_unit255

    if x.ndim == 3 and x.shape[2] in (3, 4):
        rgb = as_unit255(x[..., :3])
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])):
            return rgb
    return None


def _gray(x: np.ndarray) -> np.ndarray:
    from .colour import as_unit255
    from .imageio import to_gray

    if x.ndim == 3 and x.shape[2] in (3, 4):
        return to_gray(as_unit255(x[..., :3]))
    if x.ndim == 3:  # gray + alpha
        x = x[..., 0]
    return as_unit255(x)


def _to_u8(x: np.ndarray) -> np.ndarray:
    x = np.rint(x)
    np.clip(x, 0, 255, out=x)
    return x.astype(np.uint8)


@dataclass
class _Plan:
    """A pipeline split at the network: its gray inputs (A, B) in 0..255, the band
    each pair belongs to (None outside pan-sharpening), and how the fused grays
    become the output image."""

    inputs: list[tuple[np.ndarray, np.ndarray]]
    bands: list[int | None]
    finish: Callable[[list[np.ndarray]], np.ndarray]


def _luma_plan(a, b, keep_colour_of: str) -> _Plan:
    def finish(fused_list):
        from .colour import fuse_chroma, rgb_to_ycbcr_full, ycbcr_full_to_rgb

        (fused,) = fused_list
        ca = _colour(a) if keep_colour_of in ("a", "both") else None
        cb = _colour(b) if keep_colour_of in ("b", "both") else None
        if ca is None and cb is None:
            return _to_u8(fused)
        ya = rgb_to_ycbcr_full(ca) if ca is not None else None
        yb = rgb_to_ycbcr_full(cb) if cb is not None else None
        if ya is not None and yb is not None:
            chroma = [fuse_chroma(ya[..., k], yb[..., k]) for k in (1, 2)]
        else:
            src = ya if ya is not None else yb
            chroma = [src[..., 1], src[..., 2]]
        return _to_u8(ycbcr_full_to_rgb(np.stack([fused, *chroma], axis=-1)))

    return _Plan([(_gray(a), _gray(b))], [None], finish)


def _multi_exposure_plan(a, b) -> _Plan:
    from .colour import fuse_chroma, rgb_to_ycbcr_studio, ycbcr_studio_to_rgb

    ca, cb = _colour(a), _colour(b)
    if ca is None and cb is None:
        return _Plan([(_gray(a), _gray(b))], [None], lambda fused: _to_u8(fused[0]))
    # A gray exposure joins as neutral colour (no chroma weight).
    ca = ca if ca is not None else np.repeat(_gray(a)[..., None], 3, axis=2)
    cb = cb if cb is not None else np.repeat(_gray(b)[..., None], 3, axis=2)
    ya, yb = rgb_to_ycbcr_studio(ca), rgb_to_ycbcr_studio(cb)

    def finish(fused):
        cbf = fuse_chroma(ya[..., 1], yb[..., 1])
        crf = fuse_chroma(ya[..., 2], yb[..., 2])
        return _to_u8(ycbcr_studio_to_rgb(np.stack([fused[0], cbf, crf], axis=-1)))

    return _Plan([(ya[..., 0], yb[..., 0])], [None], finish)


def _medical_plan(pet, mri, options: PipelineOptions) -> _Plan:
    from .colour import apply_colormap, ihs_to_rgb, rgb_to_ihs

    rgb = _colour(pet)
    if rgb is None:  # a gray PET: give it a PET colour map first
        rgb = apply_colormap(_to_u8(_gray(pet)), options.pet_colormap).astype(np.float32)
    i, v1, v2 = rgb_to_ihs(rgb / 255.0)
    if options.medical_ihs == "released":
        scale = 1.0  # I written to an 8-bit file: clipped to [0, 1]
        i_net = np.clip(i, 0, 1) * 255
    elif options.medical_ihs == "range-preserving":
        scale = float(np.sqrt(3.0))  # I / sqrt(3) lies in [0, 1]: nothing is clipped
        i_net = i / scale * 255
    else:
        raise PmgiError(f"unknown medical IHS mode {options.medical_ihs!r}")

    def finish(fused):
        return _to_u8(ihs_to_rgb(fused[0] / 255.0 * scale, v1, v2) * 255)

    return _Plan([(i_net.astype(np.float32), _gray(mri))], [None], finish)


def _pan_float(pan: np.ndarray) -> np.ndarray:
    return pan.astype(np.float32) if pan.ndim == 2 else pan[..., 0].astype(np.float32)


def _pan_output(fused: np.ndarray, ms: np.ndarray) -> np.ndarray:
    if np.issubdtype(ms.dtype, np.integer):
        info = np.iinfo(ms.dtype)
        return np.clip(np.rint(fused), info.min, info.max).astype(ms.dtype)
    return fused.astype(ms.dtype)


def _pan_plan(ms, pan, match_histograms: bool) -> _Plan:
    from .colour import match_base_histogram, upsample_bicubic

    ms_up = upsample_bicubic(ms, PAN_RATIO)
    pan_f = _pan_float(pan)
    # The network works on 0..255; one scale for MS and PAN keeps their relation.
    peak = float(max(ms.max(), pan_f.max()))
    scale = 255.0 / peak if peak > 0 else 1.0
    inputs = [(ms_up[..., k] * scale, pan_f * scale) for k in range(ms.shape[2])]

    def finish(fused_bands):
        bands = []
        for k, f in enumerate(fused_bands):
            f = f / scale
            bands.append(match_base_histogram(f, ms[..., k]) if match_histograms else f)
        return _pan_output(np.stack(bands, axis=-1), ms)

    return _Plan(inputs, [k + 1 for k in range(ms.shape[2])], finish)


def _plan(task: FusionTask, a, b, options: PipelineOptions, pan_histogram_match: bool) -> _Plan:
    if task.name == "pan-sharpening":
        return _pan_plan(a, b, pan_histogram_match)
    if task.name == "multi-exposure":
        return _multi_exposure_plan(a, b)
    if task.name == "medical":
        return _medical_plan(a, b, options)
    return _luma_plan(a, b, "b" if task.name == "ir-vis" else "both")


def network_inputs(task_name: str, a: np.ndarray, b: np.ndarray,
                   options: PipelineOptions | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The gray network inputs (A, B), float32 0..255, that :func:`fuse_pair` feeds
    to the gray fusion for two sources as read (native dtype): one pair for the
    gray tasks, one per MS band for pan-sharpening. Training uses this, so that a
    network learns on exactly what it will see at inference."""
    task = get_task(task_name)
    check_pair(task.name, a, b)
    return _plan(task, a, b, options or PipelineOptions(), True).inputs


def fuse_pair(task_name: str, a: np.ndarray, b: np.ndarray, *, gray_fuse: GrayFuse | None = None,
              pan_fuse: PanFuse | None = None, options: PipelineOptions | None = None,
              pan_histogram_match: bool = True) -> np.ndarray:
    """Fuse two source images (as read, native dtype) with a gray fusion method.

    Returns the output image: uint8 gray or RGB, or for pan-sharpening the MS's
    band count and dtype on the PAN grid. ``pan_histogram_match`` applies the
    released base/detail histogram matching after a per-band gray fusion (part of
    PMGI's released pipeline; off for classical per-band methods).
    """
    task = get_task(task_name)
    options = options or PipelineOptions()
    check_pair(task.name, a, b)
    if task.name == "pan-sharpening":
        if gray_fuse is None and pan_fuse is None:
            raise PmgiError("pan-sharpening needs a fusion method")
        if pan_fuse is not None:
            from .colour import upsample_bicubic

            return _pan_output(pan_fuse(upsample_bicubic(a, PAN_RATIO), _pan_float(b)), a)
    elif gray_fuse is None:
        raise PmgiError(f"{task.title} needs a gray fusion method")
    plan = _plan(task, a, b, options, pan_histogram_match)
    fused = [gray_fuse(ia, ib, band) for (ia, ib), band in zip(plan.inputs, plan.bands)]
    return plan.finish(fused)
