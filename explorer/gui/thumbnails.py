"""Posting thumbnails decoded off the GUI thread, kept in a bounded LRU cache.

The tile delegate asks :meth:`ThumbnailCache.image` for every tile it paints: a cached
image comes back at once; otherwise the request joins a waiting list and ``ready(row)``
fires on the GUI thread once the JPEG is decoded, so the view repaints that tile. Only a
few decodes run at a time and the newest requests go first, so scrolling fast through a
long grid decodes what is on screen, not everything scrolled past.
"""

from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage

from explorer.core.bundle import Bundle

__all__ = ["ThumbnailCache"]


class _Emitter(QObject):
    """Carries results from the pool's threads to the cache (queued to the GUI thread).
    A child of the pool: the pool's destructor waits for running jobs before its children
    are deleted, so no job can emit through a deleted object."""

    decoded = Signal(int, int, QImage)  # generation, global row, image (null: none)


class _DecodeJob(QRunnable):
    def __init__(self, bundle: Bundle, row: int, generation: int, emitter: _Emitter) -> None:
        super().__init__()
        self._bundle, self._row, self._generation, self._emitter = (
            bundle, row, generation, emitter)

    def run(self) -> None:
        try:
            data = self._bundle.thumbnail(self._row)
            image = QImage.fromData(data) if data else QImage()
        except Exception:  # an unreadable thumbnail is shown as missing, never retried
            image = QImage()
        self._emitter.decoded.emit(self._generation, self._row, image)


class ThumbnailCache(QObject):
    """Decoded thumbnails of one bundle by global row.

    ``ready(row)`` is emitted on the GUI thread when a requested thumbnail has been decoded
    (or found missing). Bundles without thumbnails never schedule anything.
    """

    ready = Signal(int)

    def __init__(self, bundle: Bundle, max_size: int = 2000, max_in_flight: int = 2,
                 max_waiting: int = 256, parent: QObject | None = None) -> None:
        super().__init__(parent)
        if max_size < 1 or max_in_flight < 1 or max_waiting < 1:
            raise ValueError("max_size, max_in_flight and max_waiting must be at least 1")
        self._bundle = bundle
        self._enabled = bundle.has_thumbnails
        self._max_size = max_size
        self._max_in_flight = max_in_flight
        self._max_waiting = max_waiting
        self._images: OrderedDict[int, QImage] = OrderedDict()  # LRU; a null image: none
        self._waiting: OrderedDict[int, None] = OrderedDict()  # newest last
        self._running: set[int] = set()  # rows being decoded for the current generation
        self._active = 0  # jobs started and not yet reported, of any generation
        self._generation = 0
        # a private pool: thumbnails never queue behind other work, and deleting the cache
        # waits only for its own few running (millisecond) decodes; nothing queues in it
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_in_flight)
        self._emitter = _Emitter(self._pool)
        self._emitter.decoded.connect(self._on_decoded)

    @property
    def enabled(self) -> bool:
        """Whether the bundle has thumbnails at all."""
        return self._enabled

    @property
    def max_size(self) -> int:
        return self._max_size

    def __len__(self) -> int:
        return len(self._images)

    def pending(self) -> int:
        """Requests waiting or being decoded (for the current generation)."""
        return len(self._waiting) + len(self._running)

    def image(self, row: int) -> QImage | None:
        """The decoded thumbnail of global ``row``; None when it is not decoded yet (a decode
        is then scheduled and ``ready(row)`` follows) or the posting has none."""
        if not self._enabled:
            return None
        found = self._images.get(row)
        if found is not None:
            self._images.move_to_end(row)
            return None if found.isNull() else found
        if not 0 <= row < self._bundle.n_items:
            raise IndexError(f"row {row} outside the bundle's {self._bundle.n_items} rows")
        if row not in self._running:
            self._waiting[row] = None
            self._waiting.move_to_end(row)
            if len(self._waiting) > self._max_waiting:
                self._waiting.popitem(last=False)  # long scrolled past; asked again if shown
            self._pump()
        return None

    def clear(self) -> None:
        """Forget every image and request; decodes in progress are ignored when they end."""
        self._generation += 1
        self._images.clear()
        self._waiting.clear()
        self._running.clear()

    def _pump(self) -> None:
        while self._waiting and self._active < self._max_in_flight:
            row, _ = self._waiting.popitem(last=True)
            self._running.add(row)
            self._active += 1
            self._pool.start(_DecodeJob(self._bundle, row, self._generation, self._emitter))

    @Slot(int, int, QImage)
    def _on_decoded(self, generation: int, row: int, image: QImage) -> None:
        self._active -= 1
        if generation == self._generation:
            self._running.discard(row)
            self._images[row] = image
            self._images.move_to_end(row)
            while len(self._images) > self._max_size:
                self._images.popitem(last=False)
            self.ready.emit(row)
        self._pump()
