"""Thumbnails decoded off the GUI thread, newest request first, kept in an LRU of QImages.

The views ask for a thumbnail when they paint an item, so only visible items are
decoded, at the screen's device pixel ratio (decode_side: twice the pixels on Retina); requests that scrolled out of view before a worker got to them are
dropped. Decoding is core.images' (EXIF rotation, 16-bit, alpha), never Qt's
readers. A file that cannot be decoded is remembered with its reason, so it is
drawn as a placeholder and never raises.
"""
from __future__ import annotations

import collections
import io
import math
import threading
from typing import Optional, Union

import numpy as np
from AnyQt.QtCore import QObject, pyqtSignal as Signal
from AnyQt.QtGui import QImage
from PIL import Image

from orangecontrib.deepimage.core.images import (ImageError, decode_image, read_bytes,
                                                  shown_size)

__all__ = ["ThumbnailLoader", "Failed", "thumbnail_array", "size_bucket", "decode_side",
           "SIZE_BUCKETS"]

#: thumbnails are decoded at one of these sides (px) and scaled when painted
SIZE_BUCKETS = (64, 128, 256, 512, 1024)


def size_bucket(side: int) -> int:
    """The smallest decoding size that is at least ``side`` (the largest one beyond)."""
    return next((b for b in SIZE_BUCKETS if b >= side), SIZE_BUCKETS[-1])


def decode_side(side: int, ratio: float = 1.0) -> int:
    """The decoding size for a thumbnail shown ``side`` logical pixels wide on a screen of
    ``ratio`` device pixels per logical one (2 on Retina, 1.25 to 2 on scaled Windows
    displays), so it is sharp there: the bucket of side x ratio."""
    return size_bucket(math.ceil(side * max(1.0, ratio or 1.0)))


def thumbnail_array(source: str, side: int) -> np.ndarray:
    """The image at ``source`` as RGB uint8, fitted into side x side, aspect kept.

    Raises ImageError with a one-line reason for anything that is not an image.
    """
    data = read_bytes(source)
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = shown_size(header)
    except Exception:
        width = height = 0  # decode_image gives the reason
    if width > 0 and height > 0:
        scale = min(1.0, side / max(width, height))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
    else:
        size = None
    return decode_image(data, size)


class Failed(str):
    """A thumbnail that could not be made; the string is the reason."""


Thumbnail = Union[QImage, Failed]


def _to_qimage(pixels: np.ndarray) -> QImage:
    height, width, _ = pixels.shape
    pixels = np.ascontiguousarray(pixels)
    image = QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return image.copy()  # own the memory; ``pixels`` goes away


class ThumbnailLoader(QObject):
    """Decode thumbnails in a few worker threads and cache them.

    ``get(path, side)`` returns the QImage (or a Failed reason) when it is cached,
    else None after queuing the request; ``loaded(path, side)`` is emitted (in
    the GUI thread) when it arrives.
    """

    loaded = Signal(str, int)
    #: finished in a worker thread; relayed to the GUI thread as ``loaded``
    _finished = Signal(str, int, object)

    def __init__(self, parent: Optional[QObject] = None, workers: int = 3,
                 max_pending: int = 300, max_bytes: int = 256 << 20):
        super().__init__(parent)
        self.max_pending = max_pending
        self.max_bytes = max_bytes
        #: how many decodes were queued (tests check laziness with it)
        self.requested = 0
        self._cache: "collections.OrderedDict[tuple[str, int], Thumbnail]" = \
            collections.OrderedDict()
        self._cached_bytes = 0
        self._pending: "collections.deque[tuple[str, int]]" = collections.deque()
        self._in_flight: set[tuple[str, int]] = set()
        self._lock = threading.Condition()
        self._stopped = False
        self._busy = 0  # decodes running now
        self._finished.connect(self._store)
        self._threads = [threading.Thread(target=self._work, daemon=True,
                                          name=f"thumbnails-{i}") for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def cached(self, path: str, side: int) -> Optional[Thumbnail]:
        """The cached thumbnail, without queuing anything."""
        key = (path, side)
        item = self._cache.get(key)
        if item is not None:
            self._cache.move_to_end(key)
        return item

    def get(self, path: str, side: int) -> Optional[Thumbnail]:
        """The thumbnail if cached; otherwise queue it (newest first) and return None."""
        item = self.cached(path, side)
        if item is not None or not path:
            return item if path else Failed("no file name")
        key = (path, side)
        with self._lock:
            if key in self._in_flight:
                return None
            self._in_flight.add(key)
            self._pending.append(key)
            self.requested += 1
            while len(self._pending) > self.max_pending:  # scrolled past long ago
                self._in_flight.discard(self._pending.popleft())
            self._lock.notify()
        return None

    def clear_pending(self) -> None:
        """Forget queued requests (new data, or a new size)."""
        with self._lock:
            for key in self._pending:
                self._in_flight.discard(key)
            self._pending.clear()

    def clear(self) -> None:
        self.clear_pending()
        self._cache.clear()
        self._cached_bytes = 0

    def shutdown(self) -> None:
        """Stop the workers (call when the widget is deleted)."""
        with self._lock:
            self._stopped = True
            self._pending.clear()
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is queued or being decoded (for tests and scripts)."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _work(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._pending or self._stopped)
                if self._stopped:
                    return
                path, side = self._pending.pop()  # the newest: what is on screen now
                self._busy += 1
            try:
                result: Thumbnail = _to_qimage(thumbnail_array(path, side))
            except ImageError as exc:
                result = Failed(str(exc))
            except Exception as exc:  # a thumbnail must never take the widget down
                result = Failed(f"could not be shown ({type(exc).__name__}: {exc})")
            try:
                self._finished.emit(path, side, result)
            except RuntimeError:  # the loader was deleted meanwhile
                return
            finally:
                with self._lock:
                    self._busy -= 1
                    self._lock.notify_all()

    def _store(self, path: str, side: int, result: Thumbnail) -> None:
        key = (path, side)
        size = result.sizeInBytes() if isinstance(result, QImage) else 64
        self._cache[key] = result
        self._cached_bytes += size
        while self._cached_bytes > self.max_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.sizeInBytes() if isinstance(old, QImage) else 64
        with self._lock:
            self._in_flight.discard(key)
        self.loaded.emit(path, side)
