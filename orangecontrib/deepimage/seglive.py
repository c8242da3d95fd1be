"""Segment Images' live preview jobs (no Qt): run in the editor's worker, they send
the class map of the part of the image in view first (``state.set_partial_result``),
then the view at full resolution, and return the whole image's.

``PreviewModels`` keeps what makes them fast between requests: the features of each
image (core.segment.preview.FeatureStore, bounded memory), the quick forest while
the labels stay the same, and the deep features' projection while the labelled
images stay the same.
"""
from __future__ import annotations

import importlib
import threading
from typing import Mapping, Optional, Sequence

import numpy as np

from .core.cancel import Cancelled
from .core.segment.features import fit_deep_projection
from .core.segment.preview import FeatureStore, PreviewMap, View, fit_preview, preview_maps
from .segmentation import (PixelCache, State, labelled_images, labels_key,
                           painted_class_names)

__all__ = ["PreviewModels", "live_classifier", "live_segmenter", "warm_features", "View",
           "PreviewMap"]


class PreviewModels:
    """What the live preview keeps between requests (see module doc); one preview
    job at a time uses it."""

    def __init__(self, max_bytes: int = 1 << 30):
        self.store = FeatureStore(max_bytes)
        self.fits = 0  # how many quick forests were trained; tests read it
        self._lock = threading.Lock()
        self._key: Optional[bytes] = None
        self._model = None
        self._projection: tuple = (None, None)  # (labelled paths and features, projection)

    def projection(self, pixels: PixelCache, paths: Sequence[str], features: str):
        """The deep features' projection, fitted on the labelled images (None for
        filters), kept while they stay the same."""
        key = (tuple(sorted(paths)), features)
        if self._projection[0] != key:
            images = [pixels.get(path) for path in sorted(paths)]
            self._projection = (key, fit_deep_projection(images, features))
        return self._projection[1]

    def model(self, pixels: PixelCache, labels: Mapping[str, np.ndarray], features: str,
              class_names: Optional[Sequence[str]] = None):
        """The quick forest for ``labels`` (path -> labels), trained now if they
        changed; ValueError for labels of another size than their image."""
        labels = {path: values for path, values in labels.items() if values.any()}
        key = labels_key(labels, features, class_names)
        with self._lock:
            if key != self._key or self._model is None:
                images = labelled_images(pixels, labels)
                projection = self.projection(pixels, list(images), features)
                labelled = {path: (self.store.get(path, image, features, projection),
                                   labels[path]) for path, image in images.items()}
                self._model = fit_preview(labelled, painted_class_names(labels, class_names))
                self._key = key
                self.fits += 1
            return self._model


def _send_maps(classifier, models: PreviewModels, pixels: PixelCache, path: str,
               view: Optional[View], state: State) -> PreviewMap:
    image = pixels.get(path)
    classifier.check_image(image)  # e.g. a loaded classifier for other channels: say so
    feats = models.store.get(path, image, classifier.features, classifier.projection)
    result = None
    for result in preview_maps(classifier, feats, view or View.whole(image.shape),
                               state.is_interruption_requested):
        if not result.final:
            state.set_partial_result(result)
    models.store.trim(keep=feats)
    return result


def live_classifier(pixels: PixelCache, models: PreviewModels,
                    labels: Mapping[str, np.ndarray], features: str, path: str,
                    class_names: Optional[Sequence[str]], view: Optional[View],
                    state: State) -> PreviewMap:
    """After a stroke or on switching images: the quick forest on ``labels`` (path ->
    labels), the image ``path`` predicted, ``view`` first (default: all of it)."""
    classifier = models.model(pixels, labels, features, class_names)
    if state.is_interruption_requested():
        raise Cancelled()
    return _send_maps(classifier, models, pixels, path, view, state)


def live_segmenter(segmenter, pixels: PixelCache, models: PreviewModels, path: str,
                   view: Optional[View], state: State) -> PreviewMap:
    """A given classifier (the input's, or loaded from a file) on the image ``path``,
    ``view`` first."""
    return _send_maps(segmenter, models, pixels, path, view, state)


def warm_features(pixels: PixelCache, models: PreviewModels, path: str, features: str,
                  state: State) -> None:
    """Compute and keep the features of the image ``path`` shown before anything is
    painted on it, so that the first stroke's preview is as quick as the next ones'
    (filter features only: the network's need the labelled images first)."""
    importlib.import_module("sklearn.ensemble")  # the first stroke's forest, ahead
    if features != "filters":
        return None
    feats = models.store.get(path, pixels.get(path), features)
    if feats.whole_fits:
        feats.whole(state.is_interruption_requested)
        models.store.trim(keep=feats)
    return None
