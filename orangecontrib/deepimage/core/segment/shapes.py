"""From a foreground mask (or a class map) to labelled objects: connected
components, holes filled, objects outside the expected diameter removed, and
touching objects split by a distance-transform watershed, only where the shape
says two objects touch (a concave outline), so round solid objects are never cut.

Works one object at a time inside its bounding box, so memory follows the
largest object, not the image: a 100-megapixel mask costs its label image.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

__all__ = ["objects_from_mask", "objects_from_class_map", "split_touching", "CONCAVE_SOLIDITY"]

#: objects less solid than this (area / convex hull area) are split when their
#: distance transform has two or more separate peaks; an ellipse or a disc is ~0.97+,
#: two touching discs ~0.85-0.9
CONCAVE_SOLIDITY = 0.93


def _radius_range(diameter, areas: np.ndarray) -> tuple[float, float]:
    """(min, max) expected radius: from ``diameter``, else from the objects' areas."""
    if diameter is not None:
        return max(float(diameter[0]) / 2, 1.0), max(float(diameter[1]) / 2, 1.0)
    if areas.size == 0:
        return 1.0, math.inf
    typical = math.sqrt(float(np.median(areas)) / math.pi)
    return max(typical * 0.5, 1.0), math.inf


def _split_one(mask: np.ndarray, min_radius: float) -> "np.ndarray | None":
    """Watershed pieces (1..k) of one object's mask, or None to keep it whole."""
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    padded = np.pad(mask, 1)
    distance = ndi.distance_transform_edt(padded)
    # peaks at least a small radius apart and at least half a small radius deep
    peaks = peak_local_max(distance, min_distance=max(1, int(round(min_radius * 0.8))),
                           threshold_abs=max(1.0, min_radius * 0.5), labels=padded.astype(np.int32),
                           exclude_border=False)
    if len(peaks) < 2:
        return None
    markers = np.zeros(padded.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    pieces = watershed(-distance, markers, mask=padded)[1:-1, 1:-1]
    areas = np.bincount(pieces.ravel())[1:]
    if areas.min() < math.pi * min_radius ** 2 * 0.5:  # a sliver, not an object
        return None
    return pieces


def split_touching(labels: np.ndarray, min_radius: float) -> np.ndarray:
    """Split concave objects of a label image in place (see module doc); new pieces
    get numbers after the last label. Returns ``labels``."""
    from skimage.measure import regionprops

    next_label = int(labels.max()) + 1
    for region in regionprops(labels):
        if region.area < math.pi * min_radius ** 2 * 1.2 or region.solidity >= CONCAVE_SOLIDITY:
            continue
        window = labels[region.slice]
        own = window == region.label
        pieces = _split_one(own, min_radius)
        if pieces is None:
            continue
        count = int(pieces.max())
        window[own & (pieces > 1)] = (pieces[own & (pieces > 1)] + (next_label - 2)).astype(labels.dtype)
        next_label += count - 1
    return labels


def _filter_sizes(labels: np.ndarray, radius: tuple[float, float]) -> np.ndarray:
    """Zero objects whose equivalent diameter is outside [0.5 * min, 1.5 * max]
    (a little slack: an expected size is a guess, not a measurement)."""
    areas = np.bincount(labels.ravel())
    low, high = math.pi * (radius[0] * 0.5) ** 2, math.pi * (radius[1] * 1.5) ** 2
    keep = (areas >= low) & (areas <= high)
    keep[0] = False
    return np.where(keep[labels], labels, 0).astype(labels.dtype, copy=False)


def objects_from_mask(mask: np.ndarray, split: bool = True,
                      diameter: "tuple[float, float] | None" = None,
                      fill_holes: bool = True) -> np.ndarray:
    """int32 label image (0 background, 1..N) of a boolean foreground mask."""
    from skimage.segmentation import relabel_sequential

    if fill_holes:
        mask = ndi.binary_fill_holes(mask)
    labels, count = ndi.label(mask)
    labels = labels.astype(np.int32, copy=False)
    if count == 0:
        return labels
    areas = np.bincount(labels.ravel())[1:]
    radius = _radius_range(diameter, areas)
    if diameter is not None:  # the small debris goes before it can seed a split
        labels = _filter_sizes(labels, (radius[0], math.inf))
    if split:
        split_touching(labels, radius[0])
    if diameter is not None:
        labels = _filter_sizes(labels, radius)
    return relabel_sequential(labels)[0].astype(np.int32, copy=False)


def objects_from_class_map(class_map: np.ndarray, split: bool = True,
                           diameter: "tuple[float, float] | None" = None,
                           fill_holes: bool = True) -> np.ndarray:
    """Label image of a class map (1 background, 2.. kinds of object): each kind's
    objects labelled on their own, so touching objects of two kinds stay two."""
    labels = np.zeros(class_map.shape, np.int32)
    for kind in np.unique(class_map):
        if kind <= 1:
            continue
        found = objects_from_mask(class_map == kind, split, diameter, fill_holes)
        if fill_holes:  # a filled hole of one kind must not cover another kind's object
            found[(class_map > 1) & (class_map != kind)] = 0
        offset = int(labels.max())
        labels[found > 0] = found[found > 0] + offset
    from skimage.segmentation import relabel_sequential
    return relabel_sequential(labels)[0].astype(np.int32, copy=False)
