"""The pixel classifier (ilastik's pixel classification): a random forest on pixel
features (features.py), trained from sparse labels (scribbles) or full masks on a
few images, then applied a tile at a time to images of any size.

Label images use ilastik's numbers: 0 unlabelled, 1 background, 2.. kinds of
object. Saved as one skops file (never a pickle): loading checks every type in the
file against a short list of scikit-learn and numpy types and runs no code from it.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage as ndi

from .classifier_file import (FORMAT, FORMAT_VERSION, SegmenterFileError, read_classifier_file,
                              write_classifier_file)
from .features import FEATURE_SETS, fit_deep_projection, pixel_features_tiles
from .imageops import intensity_range
from .shapes import objects_from_class_map

__all__ = ["PixelClassifier", "SegmenterFileError", "LabelError", "FORMAT", "FORMAT_VERSION",
           "MAX_TRAINING_PIXELS", "image_channels", "per_class_pixels"]

#: labelled pixels used for training at most (sampled evenly over the classes)
MAX_TRAINING_PIXELS = 200_000


class LabelError(ValueError):
    """A label image that cannot train a classifier (wrong size, no labels)."""


def _channels(image: np.ndarray) -> int:
    return 1 if image.ndim == 2 else image.shape[2]


def image_channels(images: Sequence[np.ndarray]) -> int:
    """The images' number of channels; LabelError when they differ."""
    channels = {_channels(image) for image in images}
    if not channels:
        raise LabelError("no images to train on")
    if len(channels) > 1:
        raise LabelError(f"the images have different numbers of channels ({sorted(channels)})")
    return channels.pop()


def per_class_pixels(labels: np.ndarray, per_class: int,
                     pick: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """Flat indices (int64) of at most ``per_class`` labelled pixels of each class;
    ``pick(where, n)`` chooses n of a class's flat indices ``where`` when it has more."""
    flat = labels.ravel()
    chosen = []
    for value in np.unique(flat):
        if value == 0:
            continue
        where = np.flatnonzero(flat == value).astype(np.int64)
        if where.size > per_class:
            where = pick(where, per_class)
        chosen.append(where)
    return np.concatenate(chosen) if chosen else np.zeros(0, np.int64)


class PixelClassifier:
    """A random forest that tells each pixel's class (1 background, 2.. objects)."""

    def __init__(self, n_estimators: int = 24, max_depth: "int | None" = 14,
                 n_jobs: int = 2, random_state: int = 0):
        self.n_estimators, self.max_depth = n_estimators, max_depth
        self.n_jobs, self.random_state = n_jobs, random_state
        self.features: str = "filters"
        self.channels: "int | None" = None
        self.classes_: "np.ndarray | None" = None  # the label values, e.g. [1, 2]
        self.class_names: list[str] = []
        self.forest = None
        self.projection = None  # deep features' PCA per layer (features.fit_deep_projection)

    @property
    def fitted(self) -> bool:
        return self.forest is not None

    def fit(self, images: Sequence[np.ndarray], labels: Sequence[np.ndarray],
            features: str = "filters", class_names: "Sequence[str] | None" = None,
            names: "Sequence[str] | None" = None) -> "PixelClassifier":
        """Train on images and their label images (0 unlabelled, 1 background, 2..
        objects). ``names`` (e.g. the label files) name the culprit in errors.
        ``class_names`` default to "background", "object" (or "object 1", ...)."""
        if features not in FEATURE_SETS:
            raise ValueError(f"features must be one of {', '.join(FEATURE_SETS)}, not {features!r}")
        if len(images) != len(labels) or not images:
            raise LabelError(f"{len(images)} images and {len(labels)} label images: "
                             f"give one label image per image")
        names = list(names) if names is not None else [f"label image {i + 1}" for i in range(len(labels))]
        channels = image_channels(images)
        checked = [self._checked_labels(image, label, name)
                   for image, label, name in zip(images, labels, names)]
        projection = fit_deep_projection(list(images), features)
        rng = np.random.default_rng(self.random_state)
        per_class = MAX_TRAINING_PIXELS // (4 * len(images))
        xs, ys = [], []
        for image, label in zip(images, checked):
            chosen = np.zeros(label.shape, bool)
            chosen.ravel()[per_class_pixels(
                label, per_class, lambda where, n: rng.choice(where, n, replace=False))] = True
            for part, feats in pixel_features_tiles(image, features, projection=projection):
                here = chosen[part.target]
                xs.append(feats[here])
                ys.append(label[part.target][here])
        return self.fit_rows(np.concatenate(xs), np.concatenate(ys), features, channels,
                             projection, class_names)

    def fit_rows(self, x: np.ndarray, y: np.ndarray, features: str, channels: int,
                 projection=None, class_names: "Sequence[str] | None" = None
                 ) -> "PixelClassifier":
        """Train on pixel features already computed (rows of ``x``, classes ``y``):
        what :meth:`fit` ends with, and the live preview's quick forest."""
        from sklearn.ensemble import RandomForestClassifier

        classes = np.unique(y)
        if 1 not in classes or len(classes) < 2:
            raise LabelError(f"the labels have only class {classes.tolist()}: label both "
                             f"background (1) and at least one kind of object (2..)")
        forest = RandomForestClassifier(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                        n_jobs=self.n_jobs, random_state=self.random_state,
                                        class_weight="balanced")
        forest.fit(x, y)
        self.forest, self.features, self.channels = forest, features, channels
        self.projection = projection
        self.classes_ = forest.classes_.astype(np.uint8)
        self.class_names = self._names(class_names, self.classes_)
        return self

    @staticmethod
    def _checked_labels(image: np.ndarray, label: np.ndarray, name: str) -> np.ndarray:
        label = np.asarray(label)
        if label.ndim == 3 and label.shape[2] == 1:
            label = label[:, :, 0]
        if label.ndim != 2:
            raise LabelError(f"{name}: a label image has one channel, this one has shape "
                             f"{label.shape}")
        if label.shape != image.shape[:2]:
            raise LabelError(f"{name}: the label image is {label.shape[1]}x{label.shape[0]}, "
                             f"its image {image.shape[1]}x{image.shape[0]}; they must be "
                             f"the same size")
        if label.min() < 0 or label.max() > 255:
            raise LabelError(f"{name}: labels are 0 (unlabelled), 1 (background) and 2.. "
                             f"(objects) up to 255, not {label.min()}..{label.max()}")
        if not label.any():
            raise LabelError(f"{name}: the label image has no labels (every pixel is 0)")
        return label.astype(np.uint8, copy=False)

    @staticmethod
    def _names(given, classes: np.ndarray) -> list[str]:
        if given is not None:
            given = list(given)
            if len(given) != len(classes):
                raise ValueError(f"{len(given)} class names for {len(classes)} classes")
            return [str(n) for n in given]
        if len(classes) == 2:
            return ["background", "object"]
        return ["background"] + [f"object {int(c) - 1}" for c in classes[1:]]

    def check_image(self, image: np.ndarray) -> None:
        """Raise (RuntimeError, ValueError) unless this classifier is trained and can
        predict ``image`` (the channels it was trained on)."""
        if not self.fitted:
            raise RuntimeError("the pixel classifier is not trained: call fit() or load()")
        if _channels(image) != self.channels:
            raise ValueError(f"the classifier was trained on images with {self.channels} "
                             f"channel(s); this one has {_channels(image)}")

    def predict_proba(self, image: np.ndarray, tile: "int | None" = None) -> np.ndarray:
        """H x W x K float32 probabilities of the classes (in ``classes_`` order)."""
        self.check_image(image)
        out = np.zeros(image.shape[:2] + (len(self.classes_),), np.float32)
        for part, feats in pixel_features_tiles(image, self.features, tile,
                                                projection=self.projection):
            flat = feats.reshape(-1, feats.shape[2])
            out[part.target] = self.forest.predict_proba(flat).reshape(feats.shape[:2] + (-1,))
        return out

    def _codes(self, rows: np.ndarray) -> np.ndarray:
        """Index (into ``classes_``) of the likeliest class of each row of features."""
        if len(rows) == 0:
            return np.zeros(0, np.uint8)
        return self.forest.predict_proba(rows).argmax(axis=1).astype(np.uint8)

    def _predict_tile(self, feats: np.ndarray, exact: bool) -> np.ndarray:
        """Class indices of a tile's pixels: every second pixel of every second row
        first, then exactly every pixel near a place where those disagree."""
        height, width, count = feats.shape
        if exact or min(height, width) < 8:
            return self._codes(feats.reshape(-1, count)).reshape(height, width)
        coarse = self._codes(feats[::2, ::2].reshape(-1, count))
        coarse = coarse.reshape((height + 1) // 2, (width + 1) // 2)
        mixed = ndi.maximum_filter(coarse, 3) != ndi.minimum_filter(coarse, 3)
        full = coarse.repeat(2, 0).repeat(2, 1)[:height, :width]
        near = mixed.repeat(2, 0).repeat(2, 1)[:height, :width]
        near[::2, ::2] = False  # the coarse pixels themselves are known
        full[near] = self._codes(feats[near])
        return full

    def classify_features(self, feats: np.ndarray, exact: bool = False) -> np.ndarray:
        """h x w uint8 class map of pixels whose features (h x w x F) are known."""
        return self.classes_[self._predict_tile(feats, exact)]

    def predict(self, image: np.ndarray, tile: "int | None" = None,
                exact: bool = False) -> np.ndarray:
        """H x W uint8 class map: 1 background, 2.. the kinds of object.

        Unless ``exact``, the forest is asked about every second pixel in both
        directions, and then about each pixel next to a change of class (on generated
        cells: two thirds of the CPU time, the same class for 99.999% of the pixels; a
        region thinner than two pixels may be missed)."""
        self.check_image(image)
        out = np.zeros(image.shape[:2], np.uint8)
        value_range = intensity_range(image)
        for part, feats in pixel_features_tiles(image, self.features, tile, value_range,
                                                self.projection):
            out[part.target] = self.classes_[self._predict_tile(feats, exact)]
        return out

    def segment(self, image: np.ndarray, split_touching: bool = True,
                diameter: "tuple[float, float] | None" = None,
                fill_holes: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(label image int32, class map uint8) of an image: the class map's objects,
        each kind labelled on its own, touching ones split where the outline is concave."""
        class_map = self.predict(image)
        labels = objects_from_class_map(class_map, split_touching, diameter, fill_holes)
        return labels, class_map

    # saving and loading ---------------------------------------------------------------
    def save(self, path: "str | os.PathLike") -> None:
        """Write the classifier to one skops file (see module doc)."""
        if not self.fitted:
            raise RuntimeError("an untrained pixel classifier cannot be saved")
        write_classifier_file({"features": self.features, "channels": int(self.channels),
                               "classes": self.classes_.tolist(),
                               "class_names": list(self.class_names), "forest": self.forest,
                               "projection": self.projection},
                              path)

    @classmethod
    def load(cls, path: "str | os.PathLike") -> "PixelClassifier":
        """Read a file written by :meth:`save`; SegmenterFileError naming the file
        for anything else (another version, not ours, damaged). Runs no code from it."""
        content = read_classifier_file(path)
        model = cls()
        model.forest = content["forest"]
        model.features, model.channels = content["features"], content["channels"]
        model.classes_ = np.asarray(content["classes"], np.uint8)
        model.class_names = [str(name) for name in content["class_names"]]
        model.projection = content["projection"]
        model.n_jobs = min(2, os.cpu_count() or 1)
        model.forest.n_jobs = model.n_jobs
        return model

    def __repr__(self) -> str:
        if not self.fitted:
            return "PixelClassifier(untrained)"
        return (f"PixelClassifier(features={self.features!r}, classes={self.class_names}, "
                f"channels={self.channels})")
