"""Write docs/screenshot.png: the real window, offscreen, on a task's demo pair, fused,
with the metrics panel filled.

The window runs with fresh settings in temporary folders (nothing of the user's is
read or changed), fuses the demo pair with PMGI (the shipped checkpoint of the task,
when there is one) and the task's baselines, waits for the metrics, shows PMGI's
result, reads the pixel values under a point of the fused view, and saves
``QWidget.grab()`` of the main window.

    QT_QPA_PLATFORM=offscreen python tools/screenshot.py [--task ir-vis] [-o docs/screenshot.png]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="ir-vis")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--size", default="1500x850", help="window size, WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = tempfile.TemporaryDirectory(prefix="pmgi-screenshot-")
    os.environ["PMGI_USER_DIR"] = str(Path(tmp.name) / "user")
    os.environ["PMGI_CONFIG_DIR"] = str(Path(tmp.name) / "config")
    sys.path.insert(0, str(ROOT))

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from pmgi_gui.app.main_window import MainWindow
    from pmgi_gui.app.settings import Settings
    from pmgi_gui.core.fusion import PMGI_METHOD

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("PMGI Fusion Studio")
    Settings(task=args.task).save()
    window = MainWindow()
    window.set_device("cpu")
    window.resize(width, height)
    window.show()

    done = QEventLoop()
    ended = []
    window.runner.finished.connect(lambda s: (ended.append(s), done.quit()))
    window.runner.failed.connect(lambda f: (ended.append(f), done.quit()))
    if window.request_fusion() is None:
        print("nothing to fuse:", window.messages[-1:])
        return 2
    QTimer.singleShot(300_000, done.quit)
    done.exec()
    if not ended or not hasattr(ended[0], "outcomes"):
        print("fusion did not finish:", ended)
        return 2
    if PMGI_METHOD in window.results:
        window.show_method(PMGI_METHOD)
    # A reading under the cursor, as when a person points at the fused view.
    shown = window.panel_fused.shown()
    if shown is not None:
        h, w = shown.shape[:2]
        window.panel_fused.hovered.emit(w * 0.6, h * 0.45)
    settle = QEventLoop()
    QTimer.singleShot(500, settle.quit)  # layouts and repaints
    settle.exec()

    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(args.output), "PNG"):
        print(f"cannot write {args.output}")
        return 2
    methods = ", ".join(o.name for o in ended[0].outcomes)
    print(f"wrote {args.output} ({width}x{height}): {args.task} demo pair, {methods}")
    window.close()
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
