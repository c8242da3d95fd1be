"""The label editor's live preview, fast (ilastik's live update), without Qt.

After a stroke only a small forest is refitted on the labelled pixels, whose
features are kept between strokes; the features of the image on screen are kept
too, and only the pixels in view are predicted first, at screen resolution when the
view is zoomed out (the features of every n-th row and column, computed for those
alone: :func:`filterfeatures.filter_features` with ``at``), then the view at full
resolution, then the whole image (whose features are then kept).

- :class:`ImageFeatures`: one image's features, computed for a region, at some
  pixels, or whole, and kept;
- :class:`FeatureStore`: ImageFeatures by image, the least recently used dropped
  beyond a memory budget;
- :func:`fit_preview` a quick forest on the labelled pixels;
- :func:`preview_maps`: the class maps of an image, view first, whole last.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Optional, Sequence

import numpy as np

from ..cancel import Cancelled
from .classifier import PixelClassifier, image_channels, per_class_pixels
from .features import MARGIN, feature_count, pixel_features, pixel_features_tiles
from .filterfeatures import filter_features
from .imageops import intensity_range, scaled

__all__ = ["View", "PreviewMap", "ImageFeatures", "FeatureStore", "fit_preview",
           "preview_maps", "PREVIEW_TREES", "PREVIEW_DEPTH", "PER_CLASS"]

#: the preview's forest: fewer and shallower trees than the classifier that is applied
PREVIEW_TREES, PREVIEW_DEPTH = 10, 10
#: labelled pixels of each class of each image the preview trains on, at most
PER_CLASS = 10_000
_ALIGN = 8  # crops start on multiples of 8, as tiles do, so the filters' grids agree
_CHUNK = 256  # missing labelled pixels are computed in blocks of this side
_WHOLE_TILE = 512  # the whole image's features are computed in tiles of this side


@dataclass(frozen=True)
class View:
    """The part of an image on screen (pixels ``top:bottom``, ``left:right``) and
    the step between pixels shown (1 when zoomed in, n when n pixels share one)."""

    top: int
    left: int
    bottom: int
    right: int
    step: int = 1

    @classmethod
    def whole(cls, shape: Sequence[int], screen: int = 1024) -> "View":
        """All of an image of ``shape``, fitted in ``screen`` pixels."""
        height, width = shape[:2]
        return cls(0, 0, height, width, max(1, int(round(max(height, width) / screen))))

    def clipped(self, shape: Sequence[int]) -> "View":
        height, width = shape[:2]
        top, left = max(0, min(self.top, height - 1)), max(0, min(self.left, width - 1))
        return View(top, left, max(top + 1, min(self.bottom, height)),
                    max(left + 1, min(self.right, width)), max(1, int(self.step)))

    def covers(self, shape: Sequence[int]) -> bool:
        return (self.top, self.left, self.bottom, self.right) == (0, 0) + tuple(shape[:2])


@dataclass(frozen=True)
class PreviewMap:
    """A class map of the pixels ``top::step``, ``left::step`` of an image;
    ``final``: the whole image at full resolution, nothing better will follow."""

    class_map: np.ndarray
    top: int = 0
    left: int = 0
    step: int = 1
    final: bool = True


class ImageFeatures:
    """The pixel features of one image, computed where needed and kept."""

    def __init__(self, image: np.ndarray, features: str, projection=None,
                 max_whole_bytes: int = 1 << 30):
        self.image, self.features, self.projection = image, features, projection
        self.max_whole_bytes = max_whole_bytes
        self.shape = image.shape[:2]
        self.value_range = intensity_range(image)
        self.whole_features: Optional[np.ndarray] = None
        self._known = np.zeros(0, np.int64)  # flat indices of pixels computed
        self._known_rows: Optional[np.ndarray] = None

    @property
    def nbytes(self) -> int:
        whole = 0 if self.whole_features is None else self.whole_features.nbytes
        return whole + (0 if self._known_rows is None else self._known_rows.nbytes)

    def region(self, top: int, left: int, bottom: int, right: int, step: int = 1
               ) -> np.ndarray:
        """Features of rows top:bottom:step and columns left:right:step."""
        if self.whole_features is not None:
            return self.whole_features[top:bottom:step, left:right:step]
        height, width = self.shape
        o_top = max(0, top - MARGIN) // _ALIGN * _ALIGN
        o_left = max(0, left - MARGIN) // _ALIGN * _ALIGN
        o_bottom, o_right = min(height, bottom + MARGIN), min(width, right + MARGIN)
        crop = self.image[o_top:o_bottom, o_left:o_right]
        rows = np.arange(top, bottom, step) - o_top
        cols = np.arange(left, right, step) - o_left
        if self.features != "filters":  # the network's features: all, then picked
            feats = pixel_features(crop, self.features, self.value_range, self.projection)
            return feats[np.ix_(rows, cols)]
        planes = scaled(crop, self.value_range)
        planes = planes[:, :, None] if planes.ndim == 2 else planes
        parts = [filter_features(planes[:, :, c], (rows, cols)) for c in range(planes.shape[2])]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)

    @property
    def whole_fits(self) -> bool:
        """Whether the features of every pixel may be kept (else: a tile at a time)."""
        count = self.image.shape[2] if self.image.ndim == 3 else 1
        per_pixel = 4 * feature_count(self.features, count)  # float32
        return self.shape[0] * self.shape[1] * per_pixel <= self.max_whole_bytes

    def whole(self, is_cancelled: Callable[[], bool] = lambda: False) -> np.ndarray:
        """Features of every pixel (computed a tile at a time, then kept)."""
        if self.whole_features is None:
            out = None
            # small tiles: a newer request waits at most one tile for this to stop
            for part, feats in pixel_features_tiles(self.image, self.features, _WHOLE_TILE,
                                                    value_range=self.value_range,
                                                    projection=self.projection):
                if is_cancelled():
                    raise Cancelled()
                if out is None:
                    out = np.empty(self.shape + (feats.shape[2],), np.float32)
                out[part.target] = feats
            self.whole_features = out
            self._known, self._known_rows = np.zeros(0, np.int64), None
        return self.whole_features

    def at(self, flat: np.ndarray) -> np.ndarray:
        """Features (n x F) of the pixels at flat indices ``flat``; computed once each,
        in blocks around them."""
        if self.whole_features is not None:
            return self.whole_features.reshape(-1, self.whole_features.shape[2])[flat]
        missing = np.setdiff1d(flat, self._known)
        if missing.size and self._spread(missing) and self.whole_fits:
            self.whole()
            return self.at(flat)
        if missing.size:
            self._add(missing)
        return self._known_rows[np.searchsorted(self._known, flat)]

    def _blocks(self, missing: np.ndarray) -> np.ndarray:
        ys, xs = np.divmod(missing, self.shape[1])
        return (ys // _CHUNK) * (self.shape[1] // _CHUNK + 1) + xs // _CHUNK

    def _spread(self, missing: np.ndarray) -> bool:
        """Whether computing blocks around these pixels costs more than the whole image
        (labels all over it, e.g. masks loaded from a folder)."""
        blocks = np.unique(self._blocks(missing)).size
        area = self.shape[0] * self.shape[1]
        return blocks * min((_CHUNK + 2 * MARGIN) ** 2, area) > area

    def _add(self, missing: np.ndarray) -> None:
        ys, xs = np.divmod(missing, self.shape[1])
        blocks = self._blocks(missing)
        indices, rows = [self._known], [] if self._known_rows is None else [self._known_rows]
        for block in np.unique(blocks):
            here = blocks == block
            by, bx = ys[here], xs[here]
            top, left = int(by.min()), int(bx.min())
            feats = self.region(top, left, int(by.max()) + 1, int(bx.max()) + 1)
            indices.append(missing[here])
            rows.append(feats[by - top, bx - left])
        known = np.concatenate(indices)
        order = np.argsort(known, kind="stable")
        self._known, self._known_rows = known[order], np.concatenate(rows)[order]


class FeatureStore:
    """ImageFeatures by (image key, feature set, projection), the least recently used
    dropped when together they hold more than ``max_bytes``. Thread-safe."""

    def __init__(self, max_bytes: int = 1 << 30):
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: "OrderedDict[tuple, ImageFeatures]" = OrderedDict()

    def get(self, key: str, image: np.ndarray, features: str, projection=None
            ) -> ImageFeatures:
        """The features of ``image`` (named ``key``), kept from before if it is the
        same image (shape and dtype) with the same features."""
        item_key = (key, features, id(projection), image.shape, str(image.dtype))
        with self._lock:
            item = self._items.pop(item_key, None)
            if item is None:
                item = ImageFeatures(image, features, projection, self.max_bytes // 2)
            self._items[item_key] = item
            return item

    def trim(self, keep: "ImageFeatures | None" = None) -> None:
        """Drop the least recently used features while over the budget (never ``keep``)."""
        with self._lock:
            while sum(item.nbytes for item in self._items.values()) > self.max_bytes:
                victim = next((k for k, v in self._items.items() if v is not keep), None)
                if victim is None:
                    break
                self._items.pop(victim)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(item.nbytes for item in self._items.values())


def _fixed_pick(where: np.ndarray, n: int) -> np.ndarray:
    """n of the flat indices ``where`` in a fixed pseudo-random order: the same pixels
    stroke after stroke, so their features are computed once."""
    order = (where * 2654435761) % 4294967291
    return np.sort(where[np.argsort(order, kind="stable")[:n]])


def _chosen_pixels(labels: np.ndarray, per_class: int = PER_CLASS) -> np.ndarray:
    """Flat indices of at most ``per_class`` labelled pixels of each class, the same
    stroke after stroke."""
    return per_class_pixels(labels, per_class, _fixed_pick)


def fit_preview(labelled: Mapping[str, tuple[ImageFeatures, np.ndarray]],
                class_names: Optional[Sequence[str]] = None, n_jobs: int = 2
                ) -> PixelClassifier:
    """A quick PixelClassifier (PREVIEW_TREES trees, PREVIEW_DEPTH deep) trained on
    the labelled pixels of images: ``labelled`` maps a key to (its features, labels).
    LabelError when the images have different numbers of channels."""
    channels = image_channels([feats.image for feats, _ in labelled.values()])
    xs, ys = [], []
    for feats, labels in labelled.values():
        chosen = _chosen_pixels(labels)
        xs.append(feats.at(chosen))
        ys.append(labels.ravel()[chosen])
    x, y = np.concatenate(xs), np.concatenate(ys)
    first = next(iter(labelled.values()))[0]
    model = PixelClassifier(n_estimators=PREVIEW_TREES, max_depth=PREVIEW_DEPTH, n_jobs=n_jobs)
    return model.fit_rows(x, y, first.features, channels, first.projection, class_names)


def preview_maps(classifier: PixelClassifier, feats: ImageFeatures, view: View,
                 is_cancelled: Callable[[], bool] = lambda: False
                 ) -> Iterator[PreviewMap]:
    """Class maps of the image: the view at its step, the view at full resolution
    (unless the view is the whole image), then the whole image (``final``). Raises
    Cancelled when ``is_cancelled()``."""
    view = view.clipped(feats.shape)
    covers = view.covers(feats.shape)
    for step in sorted({s for s in (view.step, 1) if not (s == 1 and covers)}, reverse=True):
        region = feats.region(view.top, view.left, view.bottom, view.right, step)
        yield PreviewMap(classifier.classify_features(region), view.top, view.left, step,
                         final=False)
        if is_cancelled():
            raise Cancelled()
    out = np.empty(feats.shape, np.uint8)
    if feats.whole_fits:
        whole = feats.whole(is_cancelled)
        parts = ((np.s_[top:top + _CHUNK], whole[top:top + _CHUNK])
                 for top in range(0, feats.shape[0], _CHUNK))
    else:  # too big to keep: a tile at a time
        parts = ((part.target, values) for part, values in pixel_features_tiles(
            feats.image, feats.features, value_range=feats.value_range,
            projection=feats.projection))
    for where, values in parts:
        if is_cancelled():
            raise Cancelled()
        out[where] = classifier.classify_features(values)
    yield PreviewMap(out)
