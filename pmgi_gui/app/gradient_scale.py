"""The texture control: a checkpoint family's gradient scale as a slider.

A family (``core.family``) is a task's ``paper`` checkpoint and its variants trained
with every gradient weight times g; between two members the weights are blended on a
log scale of g. The slider runs over the family's range on that log scale, with a
tick at each member, "more intensity" at the low end and "more texture" at the high
end; dragging it snaps to a member close by. Beneath, the scale, what it is made of
(a member, or the blend of which two, in what shares) and the resulting loss weights.

The control only says what was chosen: ``scale_changed`` at each step (cheap: the
text), ``scale_chosen`` when the handle is released, or after a pause when keys or
the wheel move it, so that the window fuses once per choice, not once per pixel.
Nothing here loads weights: ``Family.at`` describes a blend, the fusion worker
computes it.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QSlider, QStyle, QStyleOptionSlider,
                               QVBoxLayout, QWidget)

from ..core.family import BlendedCheckpoint, Family
from ..core.tasks import get_task

__all__ = ["GradientScaleControl", "ScaleSlider", "STEPS", "SNAP_STEPS", "CHOOSE_DELAY_MS"]

STEPS = 1000  # slider positions over the family's range
SNAP_STEPS = 25  # a dragged handle this close to a member (2.5 % of the range) sits on it
CHOOSE_DELAY_MS = 400  # keys and wheel: the scale counts as chosen after this pause


def scale_text(g: float) -> str:
    return f"×{g:.3g}"


class ScaleSlider(QSlider):
    """A horizontal slider with labelled ticks at given positions (the members),
    which a QSlider's evenly spaced ticks cannot place."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.ticks: list[tuple[int, str]] = []  # (position, label)

    def set_ticks(self, ticks: list[tuple[int, str]]) -> None:
        self.ticks = list(ticks)
        self.updateGeometry()
        self.update()

    def _extra_height(self) -> int:
        return self.fontMetrics().height() + 6

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        s = super().sizeHint()
        return QSize(s.width(), s.height() + self._extra_height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        s = super().minimumSizeHint()
        return QSize(s.width(), s.height() + self._extra_height())

    def tick_x(self, position: int) -> float:
        """Where the handle's centre is at ``position``, in widget pixels."""
        opt = QStyleOptionSlider()
        self.initStyleOption(opt)
        style = self.style()
        groove = style.subControlRect(QStyle.ComplexControl.CC_Slider, opt,
                                      QStyle.SubControl.SC_SliderGroove, self)
        handle = style.subControlRect(QStyle.ComplexControl.CC_Slider, opt,
                                      QStyle.SubControl.SC_SliderHandle, self)
        span = groove.width() - handle.width()
        return (groove.x() + handle.width() / 2
                + QStyle.sliderPositionFromValue(self.minimum(), self.maximum(), position, span))

    def paintEvent(self, event) -> None:  # noqa: N802
        # The slider itself in the upper part, ticks and their labels below it.
        super().paintEvent(event)
        if not self.ticks:
            return
        opt = QStyleOptionSlider()
        self.initStyleOption(opt)
        handle = self.style().subControlRect(QStyle.ComplexControl.CC_Slider, opt,
                                             QStyle.SubControl.SC_SliderHandle, self)
        fm = self.fontMetrics()
        y0 = handle.bottom() + 2
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        for position, label in self.ticks:
            x = self.tick_x(position)
            painter.drawLine(round(x), y0, round(x), y0 + 3)
            w = fm.horizontalAdvance(label) + 2
            left = min(max(x - w / 2, 0), self.width() - w)
            painter.drawText(QRectF(left, y0 + 4, w, fm.height()), Qt.AlignmentFlag.AlignCenter, label)
        painter.end()


class GradientScaleControl(QWidget):
    """The slider, its end labels and the text, for one family at a time."""

    scale_changed = Signal(float)
    scale_chosen = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.family: Family | None = None
        self.task = get_task("ir-vis")
        self._chosen: float | None = None
        self._lo = self._hi = 0.0  # log of the range's ends

        self.title = QLabel("Texture (gradient scale)")
        self.slider = ScaleSlider()
        self.slider.setRange(0, STEPS)
        self.slider.setSingleStep(10)
        self.slider.setPageStep(100)
        self.less_label = QLabel("◀ More intensity")
        self.more_label = QLabel("More texture ▶")
        self.more_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        for label in (self.less_label, self.more_label):
            label.setStyleSheet("color: gray")
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        ends = QHBoxLayout()
        ends.setContentsMargins(0, 0, 0, 0)
        ends.addWidget(self.less_label)
        ends.addStretch(1)
        ends.addWidget(self.more_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.slider)
        layout.addLayout(ends)
        layout.addWidget(self.text)

        self.choose_timer = QTimer(self)
        self.choose_timer.setSingleShot(True)
        self.choose_timer.setInterval(CHOOSE_DELAY_MS)
        self.choose_timer.timeout.connect(self._choose)
        self.slider.valueChanged.connect(self._on_value_changed)
        self.slider.sliderReleased.connect(self._on_released)

    # -- the family ----------------------------------------------------------------

    def set_family(self, family: Family, task: str, scale: float) -> None:
        """Show ``family`` with the handle at ``scale`` (clamped to the range); this
        is not a choice (no ``scale_chosen``)."""
        self.family = family
        self.task = get_task(task)
        lo, hi = family.range
        self._lo, self._hi = math.log(lo), math.log(hi)
        self.slider.set_ticks([(self.position(g), scale_text(g)) for g in family.scales])
        self._set_words()
        self.choose_timer.stop()
        self.slider.blockSignals(True)
        self.slider.setValue(self.position(min(max(scale, lo), hi)))
        self.slider.blockSignals(False)
        self._chosen = self.scale()
        self._show(self._chosen)

    def clear(self) -> None:
        self.choose_timer.stop()
        self.family = None
        self._chosen = None

    def _set_words(self) -> None:
        # The loss terms that the scale moves and those it keeps, in the task's words.
        t, lam = self.task, self.family.base.lambdas
        grad = [r for r, w in ((t.role_a, lam.a_grad), (t.role_b, lam.b_grad)) if w]
        inten = [r for r, w in ((t.role_a, lam.a_int), (t.role_b, lam.b_int)) if w]
        self.less_label.setToolTip(
            f"Smaller gradient weights: the fused image follows the {' and '.join(inten)} "
            "intensities more, with less fine texture")
        self.more_label.setToolTip(
            f"Larger gradient weights: the fused image keeps more of the {' and '.join(grad)} "
            "edges and detail")
        self.slider.setToolTip(
            "Gradient (texture) weights of the loss, times the scale shown; between two "
            "trained checkpoints of this family their weights are blended. Drag and "
            "release to fuse again.")

    # -- positions and scales --------------------------------------------------------

    def position(self, g: float) -> int:
        if self._hi == self._lo:
            return 0
        return round(STEPS * (math.log(g) - self._lo) / (self._hi - self._lo))

    def scale_at(self, position: int) -> float:
        """The scale at a slider position: a member's own scale where one sits."""
        for g in self.family.scales:
            if self.position(g) == position:
                return g
        return math.exp(self._lo + (self._hi - self._lo) * position / STEPS)

    def scale(self) -> float:
        return self.scale_at(self.slider.value())

    def checkpoint(self):
        """The family's checkpoint at the shown scale (a member or a blend)."""
        return self.family.at(self.scale())

    def _snapped(self, position: int) -> int:
        near = [p for p, _ in self.slider.ticks if abs(p - position) <= SNAP_STEPS]
        return min(near, key=lambda p: abs(p - position)) if near else position

    def set_scale(self, g: float) -> None:
        """Move the handle to ``g`` as a user would (keys): chosen after the pause."""
        self.slider.setValue(self.position(g))

    # -- moving ------------------------------------------------------------------------

    @Slot(int)
    def _on_value_changed(self, position: int) -> None:
        if self.family is None:
            return
        if self.slider.isSliderDown():
            snapped = self._snapped(position)
            if snapped != position:
                self.slider.setValue(snapped)  # comes back here with the member's position
                return
        else:  # keys, wheel, a click on the groove: chosen once they pause
            self.choose_timer.start()
        self._show(self.scale())
        self.scale_changed.emit(self.scale())

    @Slot()
    def _on_released(self) -> None:
        self._choose()

    @Slot()
    def _choose(self) -> None:
        self.choose_timer.stop()
        if self.family is None:
            return
        g = self.scale()
        if self._chosen is not None and g == self._chosen:
            return  # let go where it was: nothing new to fuse
        self._chosen = g
        self.scale_chosen.emit(g)

    def _member_scale(self, ckpt) -> float:
        return next(g for g, c in self.family.members if c is ckpt)

    def _show(self, g: float) -> None:
        c = self.family.at(g)
        if isinstance(c, BlendedCheckpoint):
            share = round(100 * c.t)
            what = (f"weights blended from {c.base.name} ({scale_text(self._member_scale(c.base))}, "
                    f"{100 - share} %) and {c.other.name} "
                    f"({scale_text(self._member_scale(c.other))}, {share} %)")
        elif c is self.family.base:
            what = f"{c.name}, the family's base"
        else:
            what = f"{c.name}, trained at this scale"
        self.text.setText(f"Gradient weights {scale_text(g)}: {what}")
