"""Decoded, resized images kept in memory for training: across epochs and across
the folds of one Test & Score run.

Test & Score deep-copies learners and trains one per fold, so the cache lives at
module level, shared by every copy. It is an LRU bounded in bytes
(``$DEEPIMAGE_IMAGE_CACHE_MB``, default 1024 MiB); an image is keyed by its path,
modification time and size in bytes (a changed file is a miss) and the side it
was resized to. Decoding itself is core.images.decode_image: one pipeline.
"""
from __future__ import annotations

import collections
import contextlib
import os
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .images import DEFAULT_MAX_PIXELS, Skipped, is_url, load_image

__all__ = ["DecodedImageCache", "LoadedImages", "load_images", "decoded_cache"]

DEFAULT_LIMIT_MB = 1024


class DecodedImageCache:
    """A thread-safe LRU of uint8 image arrays, bounded by their total bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._items: "collections.OrderedDict[tuple, np.ndarray]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(source: str, size: int) -> "tuple | None":
        """(path, mtime, bytes, size) for a local file; None (not cached) for URLs."""
        if is_url(source):
            return None
        try:
            stat = os.stat(source)
        except OSError:
            return None
        return os.path.abspath(source), stat.st_mtime_ns, stat.st_size, int(size)

    def get(self, key: "tuple | None") -> "np.ndarray | None":
        if key is None:
            return None
        with self._lock:
            image = self._items.get(key)
            if image is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return image

    def put(self, key: "tuple | None", image: np.ndarray) -> None:
        if key is None or image.nbytes > self.max_bytes:
            return
        image.setflags(write=False)  # shared between folds: nobody may change it
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old.nbytes
            self._items[key] = image
            self.bytes += image.nbytes
            while self.bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self.bytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)


def _limit_bytes() -> int:
    try:
        megabytes = float(os.environ.get("DEEPIMAGE_IMAGE_CACHE_MB", DEFAULT_LIMIT_MB))
    except ValueError:
        megabytes = DEFAULT_LIMIT_MB
    return int(max(megabytes, 0) * 2**20)


decoded_cache = DecodedImageCache(_limit_bytes())


@dataclass(frozen=True)
class LoadedImages:
    """The images that could be decoded (N x S x S x 3 uint8), their positions among
    the sources, and the ones that could not, with reasons."""

    images: np.ndarray
    indices: np.ndarray
    skipped: "tuple[Skipped, ...]"


def _decode(source: str, size: int, max_pixels: int, cache: "DecodedImageCache | None"):
    key = cache.key(source, size) if cache is not None else None
    image = cache.get(key) if cache is not None else None
    if image is None:
        image = load_image(source, (size, size), max_pixels)
        if cache is not None:
            cache.put(key, image)
    return image


def load_images(sources: Sequence[str], size: int, *,
                progress: "Callable[[int, int], None] | None" = None,
                should_stop: "Callable[[], bool] | None" = None,
                cache: "DecodedImageCache | None | bool" = True,
                workers: "int | None" = None,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImages:
    """Decode and resize ``sources`` to size x size in a thread pool (Pillow releases
    the GIL), through the in-memory cache: the embedding pipeline (iter_steps), with
    decoding as its only work. Unreadable images are reported, never fatal.

    Raises core.cancel.Cancelled when ``should_stop()`` turns true.
    """
    from .pipeline import Prepared, iter_steps
    if cache is True:
        cache = decoded_cache
    elif cache is False:
        cache = None
    sources = [os.fspath(s) for s in sources]
    out = np.empty((len(sources), size, size, 3), np.uint8)
    ok = np.zeros(len(sources), bool)
    skipped: list[Skipped] = []
    workers = workers or min(8, os.cpu_count() or 2)
    chunk, done = 64, 0

    def prepare(source: str) -> Prepared:
        return Prepared.decoded(_decode(source, size, max_pixels, cache))

    with contextlib.closing(iter_steps(sources, prepare, chunk, workers,
                                       max(2 * chunk, 4 * workers), should_stop)) as steps:
        for step in steps:
            for index, image in zip(step.indices, step.images):
                out[index] = image
            ok[step.indices] = True
            skipped += step.skipped
            done += step.handled
            if progress is not None:
                progress(done, len(sources))
    indices = np.flatnonzero(ok)
    images = out if len(indices) == len(sources) else out[indices]
    return LoadedImages(images, indices, tuple(skipped))
