"""Heatmaps over Image Viewer's thumbnails: what to explain, what was, and the overlays.

The views ask for an overlay when they paint an item, so only visible images are
explained: a path that is not known yet is remembered as wanted (newest first) and
the widget explains those in a worker (``run_explain``, core.explain). Explanations
are small (a layer-sized map), so many are kept; overlays are drawn in the GUI
thread from them and kept in an LRU bounded in bytes.
"""
from __future__ import annotations

import collections
from typing import Callable, Optional, Sequence, Union

import numpy as np
from AnyQt.QtGui import QImage

from orangecontrib.deepimage.core.explain import Explainer, Explanation, overlay
from orangecontrib.deepimage.widgets.utils.thumbnails import Failed

__all__ = ["HeatmapCache", "run_explain", "qimage_to_array", "array_to_qimage"]

Known = Union[Explanation, Failed]


def qimage_to_array(image: QImage) -> np.ndarray:
    """An RGB uint8 H x W x 3 copy of a QImage."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = image.width(), image.height(), image.bytesPerLine()
    buffer = np.frombuffer(image.constBits().asstring(stride * height), np.uint8)
    return buffer.reshape(height, stride)[:, :3 * width].reshape(height, width, 3).copy()


def array_to_qimage(pixels: np.ndarray) -> QImage:
    height, width, _ = pixels.shape
    pixels = np.ascontiguousarray(pixels)
    return QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


class HeatmapCache:
    """Explanations by path, the paths still wanted, and overlaid thumbnails.

    ``on_wanted()`` is called when a path is first wanted (the widget starts a timer).
    """

    def __init__(self, on_wanted: Callable[[], None] = lambda: None,
                 max_explanations: int = 20_000, max_bytes: int = 128 << 20):
        self.on_wanted = on_wanted
        self.max_explanations = max_explanations
        self.max_bytes = max_bytes
        self._known: "collections.OrderedDict[str, Known]" = collections.OrderedDict()
        self._wanted: "collections.OrderedDict[str, None]" = collections.OrderedDict()
        self._overlays: "collections.OrderedDict[tuple, QImage]" = collections.OrderedDict()
        self._bytes = 0

    def known(self, path: str) -> Optional[Known]:
        """The explanation (or why there is none), or None; nothing becomes wanted."""
        return self._known.get(path)

    def get(self, path: str) -> Optional[Known]:
        """The explanation (or why there is none); None, and ``path`` wanted, if unknown."""
        known = self._known.get(path)
        if known is None and path:
            self._wanted.pop(path, None)
            self._wanted[path] = None  # newest last
            if len(self._wanted) > 1000:  # scrolled past long ago
                self._wanted.popitem(last=False)
            self.on_wanted()
        return known

    def take_wanted(self, limit: int) -> "list[str]":
        """Up to ``limit`` wanted paths, the most recently painted first; they stop being
        wanted (a path painted again after this is wanted again)."""
        paths = []
        while self._wanted and len(paths) < limit:
            paths.append(self._wanted.popitem(last=True)[0])
        return paths

    def store(self, explanations: Sequence[Explanation], skipped: Sequence) -> None:
        for explanation in explanations:
            self._known[explanation.source] = explanation
        for item in skipped:
            self._known[item.source] = Failed(item.reason)
        while len(self._known) > self.max_explanations:
            self._known.popitem(last=False)

    def overlaid(self, path: str, image: QImage) -> QImage:
        """``image`` (a thumbnail of ``path``) with its heatmap over it, once known."""
        explanation = self.get(path)
        if not isinstance(explanation, Explanation):
            return image
        key = (path, image.width(), image.height())
        cached = self._overlays.get(key)
        if cached is None:
            pixels = qimage_to_array(image)
            heat = explanation.heatmap((pixels.shape[1], pixels.shape[0]))
            cached = array_to_qimage(overlay(pixels, heat))
            self._overlays[key] = cached
            self._bytes += cached.sizeInBytes()
            while self._bytes > self.max_bytes and len(self._overlays) > 1:
                _, old = self._overlays.popitem(last=False)
                self._bytes -= old.sizeInBytes()
        else:
            self._overlays.move_to_end(key)
        return cached

    def clear(self) -> None:
        self._known.clear()
        self._wanted.clear()
        self._overlays.clear()
        self._bytes = 0


def run_explain(model, explainer: "Explainer | None", paths: Sequence[str], state) -> Explainer:
    """Explain ``paths`` in a worker (ConcurrentWidgetMixin): partial results are
    (explainer, explanations, skipped) per batch. The Explainer is built here the first
    time (a network is copied to the GPU, or rebuilt from a saved model's weights)."""
    if explainer is None:
        explainer = Explainer.for_model(model)
    state.set_partial_result((explainer, [], []))

    def progress(done: int, total: int) -> None:
        state.set_progress_value(100 * done / max(total, 1))

    for explanations, skipped in explainer.iter_explain(
            paths, progress, state.is_interruption_requested):
        state.set_partial_result((explainer, explanations, skipped))
    return explainer
