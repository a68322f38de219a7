"""Helpers of the GUI tests: real and synthetic pairs, running a fusion as a user."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pmgi_gui.core.imageio import write_image
from pmgi_gui.core.tasks import get_task
from tests.conftest import shared_path
from tests.helpers import scene

# The smallest real pair of each task in /work/shared/data (keeps the suite fast).
REAL_PAIRS = {
    "ir-vis": "tno_05",
    "multi-exposure": "mefb_Chair",
    "medical": "mripet_17",
    "multi-focus": "lytro_01",
    "pan-sharpening": "sdpnet_1",
}
FUSE_TIMEOUT_MS = 120_000


def run_main(qapp, argv: list[str], limit_ms: int) -> int:
    """``pmgi_gui.app.main.main(argv)``, whose event loop must end by itself: a safety net
    quits it after ``limit_ms`` and fails the test instead of letting it hang."""
    import pytest
    from PySide6.QtCore import QTimer

    from pmgi_gui.app.main import main

    stuck = []
    net = QTimer()
    net.setSingleShot(True)
    net.timeout.connect(lambda: (stuck.append(1), qapp.quit()))
    net.start(limit_ms)
    try:
        code = main(argv)
    finally:
        net.stop()
    if stuck:
        pytest.fail(f"main({argv}) did not end its event loop within {limit_ms / 1000:g} s")
    return code


def real_pair_folder(task: str) -> Path:
    return shared_path("data", task, REAL_PAIRS[task])


def write_pair(folder: Path, task: str, a: np.ndarray, b: np.ndarray, ext: str = ".png") -> Path:
    """A pair folder with the task's file stems."""
    t = get_task(task)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, x in ((t.stem_a, a), (t.stem_b, b)):
        if ext in (".tif", ".tiff"):
            import tifffile

            tifffile.imwrite(folder / f"{stem}{ext}", x)  # test input, not the code under test
        else:
            write_image(folder / f"{stem}{ext}", x)
    return folder


def tiff_writing_works(tmp_path: Path) -> bool:
    """Whether core.imageio can write a TIFF here (it could not before the imageio
    branch's fix: tifffile needs a named file handle)."""
    try:
        write_image(tmp_path / "probe.tif", np.zeros((4, 4), np.uint16))
    except Exception:
        return False
    return True


def gray_pair(h: int = 96, w: int = 128) -> tuple[np.ndarray, np.ndarray]:
    return scene(h, w, 1), scene(h, w, 2)


def set_methods(window, pmgi: bool | None = None, baselines: bool | None = None) -> None:
    """Tick PMGI and/or every baseline, as a user clicks the check boxes."""
    if pmgi is not None:
        window.pmgi_check.setChecked(pmgi)
    if baselines is not None:
        for box in window.baseline_checks.values():
            box.setChecked(baselines)


def fuse(qtbot, window, timeout: int = FUSE_TIMEOUT_MS):
    """Press Fuse and wait for the job to finish; returns its JobSummary."""
    with qtbot.waitSignal(window.runner.finished, timeout=timeout) as blocker:
        qtbot.mouseClick(window.fuse_button, _left())
    return blocker.args[0]


def _left():
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton
