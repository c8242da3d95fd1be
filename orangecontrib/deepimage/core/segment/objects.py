"""Measurements of objects in a label image, one row per object, as columns of
numpy arrays (measures.py computes them for all objects at once, as scikit-image's
regionprops defines them; nothing per object is kept in Python, so 100,000 objects
cost their columns). Intensities are in the image's original units: a 16-bit TIFF's
counts, not an 8-bit display stretch.

Units: lengths in pixels, areas in pixels squared; centroid and bounding box in
pixel coordinates (row y, column x; the box's max is one past the last pixel).
Solidity is the area over the pixels inside the convex hull of the pixel centres
(1.0 for any digital disc or ellipse; regionprops' hull of pixel corners gives a few
hundredths less on small objects).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .measures import intensity_stats, majority, shape_measures

__all__ = ["measure_objects", "summarise", "ImageSummary", "SHAPE_COLUMNS", "intensity_columns"]

#: the shape columns, in order (intensity and class columns follow)
SHAPE_COLUMNS = ("id", "area", "perimeter", "centroid_y", "centroid_x", "bbox_min_row",
                 "bbox_min_col", "bbox_max_row", "bbox_max_col", "major_axis", "minor_axis",
                 "eccentricity", "solidity")

@dataclass(frozen=True)
class ImageSummary:
    """Per image: how many objects, their mean area (pixels; 0 when none) and the share
    of the image they cover (0..1)."""

    count: int
    mean_area: float
    covered_fraction: float


def intensity_columns(channels: int) -> list[str]:
    """Names of the intensity columns of an image with ``channels`` channels: "mean
    intensity", ... for one channel, "mean intensity 1", ... for several."""
    suffixes = [""] if channels == 1 else [f" {c + 1}" for c in range(channels)]
    return [f"{stat} intensity{s}" for s in suffixes for stat in ("mean", "min", "max")]


def _intensity(labels: np.ndarray, intensity: np.ndarray, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, min and max of each object per channel, in the image's units (float64)."""
    planes = intensity[:, :, None] if intensity.ndim == 2 else intensity
    if planes.shape[:2] != labels.shape:
        raise ValueError(f"the intensity image is {planes.shape[1]}x{planes.shape[0]}, the "
                         f"label image {labels.shape[1]}x{labels.shape[0]}")
    names = iter(intensity_columns(planes.shape[2]))
    columns: dict[str, np.ndarray] = {}
    for c in range(planes.shape[2]):
        for values in intensity_stats(labels, planes[:, :, c], ids):
            columns[next(names)] = values
    return columns


def _classes(labels: np.ndarray, class_map: np.ndarray, ids: np.ndarray,
             class_names: "Sequence[str] | None") -> np.ndarray:
    """Each object's class: the commonest class-map value under it, as a name."""
    if len(ids) == 0:
        return np.zeros(0, dtype=object)
    values = majority(labels, class_map, ids)
    if class_names is None:
        return values.astype(object)
    names = np.asarray(list(class_names), dtype=object)
    return names[np.clip(values - 1, 0, len(names) - 1)]


def measure_objects(labels: np.ndarray, intensity: "np.ndarray | None" = None,
                    class_map: "np.ndarray | None" = None,
                    class_names: "Sequence[str] | None" = None) -> dict[str, np.ndarray]:
    """One row per object of ``labels`` (0 background, 1..N): the SHAPE_COLUMNS, then
    "class" when ``class_map`` has two or more kinds of object (values 2.. named by
    ``class_names``, whose first name is the background's), then the intensity columns
    of ``intensity`` (H x W or H x W x C, original units) when given."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label image is 2-D, not of shape {labels.shape}")
    columns = shape_measures(labels)
    ids = columns["id"]
    if class_map is not None:
        kinds = np.unique(class_map[class_map > 1]) if class_map.any() else []
        names_k = len(class_names) - 1 if class_names is not None else len(kinds)
        if max(len(kinds), names_k) > 1:
            columns["class"] = _classes(labels, class_map, ids, class_names)
    if intensity is not None:
        columns.update(_intensity(labels, np.asarray(intensity), ids))
    return columns


def summarise(labels: np.ndarray) -> ImageSummary:
    """Object count, mean area and covered fraction of a label image."""
    foreground = int(np.count_nonzero(labels))
    count = int(len(np.unique(labels[labels > 0]))) if foreground else 0
    return ImageSummary(count, foreground / count if count else 0.0,
                        foreground / labels.size if labels.size else 0.0)
