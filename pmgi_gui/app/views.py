"""Image views: a titled pyqtgraph view per image, linked zoom and pan, file drops,
the cursor position for the pixel inspector, and the swipe divider.

Views only show uint8 display images that the window prepares
(``core.comparison``); they never compute. A swipe is two images, the second drawn
only right of the divider, so that dragging it redraws without composing a new
picture (which took 50-90 ms of GUI thread per step at 16 megapixels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal, Slot
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from ..core.comparison import swipe
from .sources import IMAGE_SUFFIXES

__all__ = ["ImagePanel", "link_views"]

# Once, before any image item exists: numpy images are (row, column), not (x, y).
pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)


class _RightOfImage(pg.ImageItem):
    """An image drawn only right of column ``left`` (its own pixels): the swipe's
    second image, over the first."""

    def __init__(self):
        super().__init__()
        self.left = 0.0

    def paint(self, painter, *args):
        if self.image is None:
            return
        h, w = self.image.shape[:2]
        left = min(max(self.left, 0.0), float(w))
        if left >= w:
            return
        painter.save()
        painter.setClipRect(QRectF(left, 0, w - left, h), Qt.ClipOperation.IntersectClip)
        super().paint(painter, *args)
        painter.restore()


class ImagePanel(QWidget):
    """A title above a pannable, zoomable image (y down, square pixels)."""

    file_dropped = Signal(object)  # Path
    hovered = Signal(float, float)  # x, y in the fused image's pixel grid

    def __init__(self, title: str = "", parent: QWidget | None = None, *, accept_files: bool = False):
        super().__init__(parent)
        self.title = QLabel(title)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setWordWrap(True)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.graphics.setMinimumSize(160, 160)
        self.viewbox: pg.ViewBox = self.graphics.addViewBox(lockAspect=True, invertY=True,
                                                              enableMenu=False)
        self.image = pg.ImageItem()
        self.viewbox.addItem(self.image)
        self.overlay = _RightOfImage()
        self.overlay.setVisible(False)
        self.viewbox.addItem(self.overlay, ignoreBounds=True)
        self._scale = 1.0
        self._placeholder = pg.TextItem("", color=(160, 160, 160), anchor=(0.5, 0.5))
        self.viewbox.addItem(self._placeholder, ignoreBounds=True)
        self.divider = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen((255, 220, 0), width=2),
                                       hoverPen=pg.mkPen((255, 255, 255), width=3))
        self.divider.setVisible(False)
        self.divider.sigPositionChanged.connect(self._on_divider_moved)
        self.viewbox.addItem(self.divider, ignoreBounds=True)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.graphics, 1)
        # Drops go to this panel, not to the graphics scene, which would swallow them.
        self.graphics.setAcceptDrops(False)
        self.graphics.viewport().setAcceptDrops(False)
        self.setAcceptDrops(accept_files)

    # -- showing -------------------------------------------------------------

    def set_title(self, text: str) -> None:
        self.title.setText(text)

    def set_image(self, pixels: np.ndarray | None, *, scale: float = 1.0,
                  levels: tuple[float, float] = (0, 255), autorange: bool = False) -> None:
        """Show a uint8 gray or RGB image; ``scale`` stretches it (MS on the PAN grid)."""
        if pixels is None:
            self.clear()
            return
        first = self.image.image is None or self._scale != scale
        if pixels.dtype == np.uint8 and tuple(levels) == (0, 255):
            # No levels: pyqtgraph wraps the array in a QImage as it is, where levels would
            # make it rescale a copy (~200 ms for a 16-megapixel RGB image, on this thread).
            self.image.setImage(pixels, levels=None, autoLevels=False)
        else:
            self.image.setImage(pixels, levels=levels, autoLevels=False)
        h, w = pixels.shape[:2]
        self._scale = scale
        self.image.setRect(QRectF(0, 0, w * scale, h * scale))
        self.image.setVisible(True)
        self._placeholder.setVisible(False)
        if first or autorange:
            self.viewbox.autoRange(padding=0.0)

    def set_swipe(self, right: np.ndarray | None) -> None:
        """Show ``right`` (uint8, the shown image's size) right of the divider, over the
        image; None: the image alone."""
        if right is None or self.image.image is None:
            self.overlay.setVisible(False)
            self.overlay.clear()
            return
        self.overlay.setImage(right, levels=None, autoLevels=False)
        h, w = right.shape[:2]
        self.overlay.setRect(QRectF(0, 0, w * self._scale, h * self._scale))
        self._on_divider_moved()
        self.overlay.setVisible(True)

    @Slot()
    def _on_divider_moved(self, *_) -> None:
        self.overlay.left = self.divider.value() / self._scale
        self.overlay.update()

    def clear(self, placeholder: str = "") -> None:
        self.set_swipe(None)
        self.image.clear()
        self.image.setVisible(False)
        self._placeholder.setText(placeholder)
        self._placeholder.setPos(0, 0)
        self._placeholder.setVisible(bool(placeholder))

    def shown(self) -> np.ndarray | None:
        """The array on screen (what a person sees in this view); a swipe is put
        together here, on request (tests, reports)."""
        if not self.image.isVisible():
            return None
        if self.overlay.isVisible():
            return swipe(self.image.image, self.overlay.image, self.divider.value() / self._scale)
        return self.image.image

    @property
    def scale(self) -> float:
        return self._scale

    # -- cursor ----------------------------------------------------------------

    @Slot(object)
    def _on_mouse_moved(self, scene_pos) -> None:
        if not self.viewbox.sceneBoundingRect().contains(scene_pos):
            return
        p: QPointF = self.viewbox.mapSceneToView(scene_pos)
        self.hovered.emit(p.x(), p.y())

    # -- drag and drop -----------------------------------------------------------

    @staticmethod
    def _dropped_file(mime) -> Path | None:
        if not mime.hasUrls():
            return None
        for url in mime.urls():
            if url.isLocalFile():
                path = Path(url.toLocalFile())
                if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
                    return path
        return None

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        if self._dropped_file(event.mimeData()) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802
        path = self._dropped_file(event.mimeData())
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.file_dropped.emit(path)


def link_views(panels: list[ImagePanel]) -> None:
    """Zoom and pan of every panel follow the first one's."""
    first = panels[0].viewbox
    for p in panels[1:]:
        p.viewbox.setXLink(first)
        p.viewbox.setYLink(first)
