"""The two source images of the window: where they came from, their pixels, and
how a pair folder names them. No Qt here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import ImageError
from ..core.tasks import get_task

__all__ = ["Source", "IMAGE_SUFFIXES", "find_pair", "demo_sources"]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class Source:
    """One loaded source: pixels as read (native dtype) and their file, if any."""

    pixels: np.ndarray
    path: Path | None = None
    label: str = ""

    @property
    def name(self) -> str:
        if self.path is not None:
            return f"{self.path.parent.name}/{self.path.name}"
        return self.label or "(unnamed)"

    def describe(self) -> str:
        x = self.pixels
        bands = 1 if x.ndim == 2 else x.shape[2]
        return f"{self.name}: {x.shape[1]}x{x.shape[0]}, {bands} band(s), {x.dtype}"


def find_pair(folder: str | Path, task: str) -> tuple[Path, Path]:
    """The A and B files of a pair folder: files named after the task's stems
    (``ir.*`` and ``vis.*``, ``pet.*`` and ``mri.*``, ``ms.*`` and ``pan.*``, ...)."""
    t = get_task(task)
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"not a folder: {folder}")
    found = []
    for stem, role in ((t.stem_a, t.role_a), (t.stem_b, t.role_b)):
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and p.stem.lower() == stem and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ImageError(f"{folder.name}: no {role} image; a {t.title} pair folder holds "
                             f"{t.stem_a}.<ext> and {t.stem_b}.<ext> (for example "
                             f"{t.stem_a}.png and {t.stem_b}.png)")
        found.append(files[0])
    return found[0], found[1]


def demo_sources(task: str) -> tuple[Source, Source]:
    """The built-in demo pair of ``task``.

    Uses ``pmgi_gui.core.demo`` when it is installed; until then a synthetic pair
    made with numpy, so the window always opens on something it can fuse.
    """
    try:
        from ..core.demo import demo_pair
    except ImportError:
        demo_pair = None
    if demo_pair is not None:
        from ..core.imageio import read_image

        try:
            pa, pb = demo_pair(task)
            return Source(read_image(pa), Path(pa)), Source(read_image(pb), Path(pb))
        except Exception:  # a missing demo file must not keep the window from opening
            pass
    a, b = synthetic_pair(task)
    t = get_task(task)
    return Source(a, None, f"synthetic {t.role_a}"), Source(b, None, f"synthetic {t.role_b}")


def synthetic_pair(task: str, size: int = 192, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two complementary synthetic sources for ``task`` (valid for its pipeline)."""
    t = get_task(task)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    texture = 127 + 60 * np.sin(x / 6.0) * np.cos(y / 9.0) + rng.normal(0, 8, (size, size))
    blob = 200 * np.exp(-(((x - size * 0.6) ** 2 + (y - size * 0.4) ** 2) / (2 * (size / 8) ** 2)))
    a = np.clip(0.3 * texture + blob, 0, 255).astype(np.uint8)
    b = np.clip(texture, 0, 255).astype(np.uint8)
    if t.name == "medical":
        from ..core.colour import apply_colormap

        return apply_colormap(a, "hot"), b
    if t.name == "multi-exposure":
        return (np.clip(b * 0.4, 0, 255).astype(np.uint8),
                np.clip(b * 0.6 + 110, 0, 255).astype(np.uint8))
    if t.name == "multi-focus":
        import cv2

        near, far = b.copy(), cv2.GaussianBlur(b, (0, 0), 3)
        half = size // 2
        near[:, half:] = cv2.GaussianBlur(b, (0, 0), 3)[:, half:]
        far[:, half:] = b[:, half:]
        return near, far
    if t.name == "pan-sharpening":
        import cv2

        small = size // 4
        ms = np.stack([cv2.resize(np.clip(b * f + o, 0, 255).astype(np.uint8), (small, small),
                                  interpolation=cv2.INTER_AREA)
                       for f, o in ((0.5, 20), (0.7, 10), (0.9, 0), (0.6, 60))], axis=-1)
        return ms, b
    return a, b
