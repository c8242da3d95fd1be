"""Object outlines over Image Viewer's thumbnails, from the masks Segment Images wrote.

Segment Images' Images output has a ``mask`` column (text, attribute type=mask)
naming a label image per row (0 background, 1..N objects). The outline of each
object is drawn over the thumbnail, scaled to it; masks are read once (shrunk to
at most MASK_SIDE pixels) and the outlined thumbnails kept in an LRU bounded in bytes.
"""
from __future__ import annotations

import collections
from typing import Dict, Optional, Sequence

import numpy as np
from AnyQt.QtGui import QImage
from Orange.data import Domain, StringVariable, Table
from PIL import Image

from orangecontrib.deepimage.data import image_paths
from orangecontrib.deepimage.widgets.utils.heatmaps import array_to_qimage, qimage_to_array

__all__ = ["OutlineCache", "mask_column", "outline", "OUTLINE_COLOUR"]

MASK_TYPE = "mask"
OUTLINE_COLOUR = (255, 230, 0)
MASK_SIDE = 1024


def mask_column(domain: Optional[Domain]) -> Optional[StringVariable]:
    """The text meta that names a mask per row (type=mask), or None."""
    if domain is None:
        return None
    return next((v for v in domain.metas if isinstance(v, StringVariable)
                 and v.attributes.get("type") == MASK_TYPE), None)


def outline(labels: np.ndarray) -> np.ndarray:
    """Boolean: the pixels of each object that touch another label (its border)."""
    edge = np.zeros(labels.shape, bool)
    vertical = labels[1:, :] != labels[:-1, :]
    horizontal = labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return edge & (labels > 0)


def _read_mask(path: str) -> np.ndarray:
    with Image.open(path) as image:
        image.load()
        if max(image.size) > MASK_SIDE:
            scale = MASK_SIDE / max(image.size)
            image = image.resize((max(1, round(image.width * scale)),
                                  max(1, round(image.height * scale))), Image.NEAREST)
        return np.asarray(image).astype(np.int64)


def _resized(labels: np.ndarray, width: int, height: int) -> np.ndarray:
    rows = (np.arange(height) * labels.shape[0] / height).astype(int)
    cols = (np.arange(width) * labels.shape[1] / width).astype(int)
    return labels[rows][:, cols]


class OutlineCache:
    """Masks by image path and thumbnails with the outlines drawn."""

    def __init__(self, max_bytes: int = 64 << 20, max_masks: int = 2000):
        self.max_bytes = max_bytes
        self.max_masks = max_masks
        self.masks: Dict[str, str] = {}  # image path -> mask path
        self._labels: "collections.OrderedDict[str, Optional[np.ndarray]]" = \
            collections.OrderedDict()
        self._images: "collections.OrderedDict[tuple, QImage]" = collections.OrderedDict()
        self._bytes = 0

    def set_table(self, table: Optional[Table], paths: Sequence[str]) -> bool:
        """Take the masks of ``table`` (whose images are ``paths``); False if it has none."""
        self.clear()
        column = mask_column(table.domain) if table is not None else None
        if column is None:
            return False
        masks = image_paths(table, column)
        self.masks = {path: mask for path, mask, value in
                      zip(paths, masks, table.get_column(column)) if value}
        return bool(self.masks)

    def _labels_of(self, path: str) -> Optional[np.ndarray]:
        if path not in self._labels:
            try:
                labels = _read_mask(self.masks[path])
            except (OSError, ValueError):
                labels = None  # a missing or broken mask: the thumbnail stays plain
            self._labels[path] = labels
            while len(self._labels) > self.max_masks:
                self._labels.popitem(last=False)
        return self._labels[path]

    def overlaid(self, path: str, image: QImage) -> QImage:
        """``image`` (a thumbnail of ``path``) with its objects outlined, if it has a mask."""
        if path not in self.masks:
            return image
        key = (path, image.width(), image.height(), image.cacheKey())
        cached = self._images.get(key)
        if cached is not None:
            self._images.move_to_end(key)
            return cached
        labels = self._labels_of(path)
        if labels is None or labels.ndim != 2:
            return image
        pixels = qimage_to_array(image)
        edge = outline(_resized(labels, pixels.shape[1], pixels.shape[0]))
        pixels[edge] = OUTLINE_COLOUR
        cached = array_to_qimage(pixels)
        self._images[key] = cached
        self._bytes += cached.sizeInBytes()
        while self._bytes > self.max_bytes and len(self._images) > 1:
            _, old = self._images.popitem(last=False)
            self._bytes -= old.sizeInBytes()
        return cached

    def clear(self) -> None:
        self.masks = {}
        self._labels.clear()
        self._images.clear()
        self._bytes = 0
