"""Comparison pictures made off the GUI thread.

The fused view compares a result with a source or another result: the absolute
difference of two pictures, or a pan-sharpening MS brought to the PAN grid to swipe
or flicker against. At 16 megapixels these take 0.1 s (a colour difference) to 3 s
(the MS upsampled and made a picture), far beyond a GUI-thread slot's ~20 ms. A
:class:`PictureMaker` makes each one once, by key: small ones at once, large ones on
a worker thread (one at a time, the latest request next), and says ``ready(key)``
when one is done; the window shows what it has meanwhile.

What the worker runs is a function of numpy arrays only (the window captures the
arrays it needs, never itself), so nothing but arrays crosses threads.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable

from PySide6.QtCore import QObject, Signal, Slot

from .background import CancellableWorker, WorkerThread

__all__ = ["PictureMaker", "PictureWorker", "SYNC_PIXELS"]

log = logging.getLogger(__name__)

# Pictures of up to this many pixels are made at once on the GUI thread: a colour
# difference of one megapixel takes a few milliseconds, and tests see it at once.
SYNC_PIXELS = 1 << 20


class PictureWorker(CancellableWorker):
    """Makes one picture; lives on its own QThread."""

    finished = Signal(object)  # (key, token, picture)
    failed = Signal(object)  # (key, token, message)

    def __init__(self, key: Hashable, token: int, make: Callable[[], object]):
        super().__init__()
        self.key, self.token, self.make = key, token, make

    @Slot()
    def run(self) -> None:
        try:
            picture = self.make()
        except Exception as exc:  # a comparison that cannot be made (sizes differ): say why
            if not isinstance(exc, ValueError):
                log.exception("making picture %r failed", self.key)
            self.failed.emit((self.key, self.token, str(exc)))
        else:
            self.finished.emit((self.key, self.token, picture))


class PictureMaker(QObject):
    """Pictures by key, made on request and kept (the ``keep`` latest) until
    :meth:`forget` or :meth:`clear`."""

    ready = Signal(object)  # key: a picture asked for is made (or failed: get() raises)

    def __init__(self, parent: QObject | None = None, *, keep: int = 6):
        super().__init__(parent)
        self.keep = keep
        self.sync_pixels = SYNC_PIXELS
        self._pictures: OrderedDict[Hashable, object] = OrderedDict()
        self._errors: dict[Hashable, str] = {}
        self._wanted: dict[Hashable, int] = {}  # key -> token of its live request
        self._pending: tuple[Hashable, int, Callable] | None = None
        self._run = WorkerThread(self)
        self._run.ended.connect(self._on_thread_finished)
        self._tokens = itertools.count(1)

    def get(self, key: Hashable, make: Callable[[], object], pixels: int):
        """The picture ``key``: made now when it has at most ``sync_pixels`` pixels,
        else None until ``ready(key)``. Raises ValueError when making it failed so."""
        if key in self._pictures:
            self._pictures.move_to_end(key)
            return self._pictures[key]
        if key in self._errors:
            raise ValueError(self._errors[key])
        if pixels <= self.sync_pixels:
            picture = make()
            self._store(key, picture)
            return picture
        if key not in self._wanted:
            token = next(self._tokens)
            self._wanted[key] = token
            if not self._run.is_running():
                self._start(key, token, make)
            else:  # the newest request runs next; an older waiting one is dropped
                if self._pending is not None:
                    self._wanted.pop(self._pending[0], None)
                self._pending = (key, token, make)
        return None

    def is_busy(self) -> bool:
        return self._run.is_running()

    def forget(self, which: Callable[[Hashable], bool] = lambda key: True) -> None:
        """Drop the pictures (made, failed or being made) whose key ``which`` accepts:
        what they were made from has changed."""
        for store in (self._pictures, self._errors, self._wanted):
            for key in [k for k in store if which(k)]:
                del store[key]
        if self._pending is not None and which(self._pending[0]):
            self._pending = None

    def clear(self) -> None:
        self.forget()

    def stop(self, timeout_ms: int = 30000) -> bool:
        """Drop what waits and wait for the picture being made (window closing)."""
        self._pending = None
        return self._run.stop(timeout_ms)

    def _store(self, key: Hashable, picture: object) -> None:
        self._pictures[key] = picture
        while len(self._pictures) > self.keep:
            self._pictures.popitem(last=False)

    def _start(self, key: Hashable, token: int, make: Callable) -> None:
        worker = PictureWorker(key, token, make)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        self._run.start(worker, "picture")

    def _live(self, key: Hashable, token: int) -> bool:
        """Still wanted, and from the request that is live (not one forgotten since)."""
        if self._wanted.get(key) != token:
            return False
        del self._wanted[key]
        return True

    @Slot(object)
    def _on_finished(self, message) -> None:
        key, token, picture = message
        if self._live(key, token):
            self._store(key, picture)
            self.ready.emit(key)

    @Slot(object)
    def _on_failed(self, message) -> None:
        key, token, text = message
        if self._live(key, token):
            self._errors[key] = text
            self.ready.emit(key)

    @Slot()
    def _on_thread_finished(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._start(*pending)
