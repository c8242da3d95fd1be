"""The threshold method (no training), as CellProfiler's IdentifyPrimaryObjects:
an optional background correction for uneven illumination, a global (Otsu, Li) or
local threshold, light or dark objects, holes filled, objects outside an expected
diameter removed, touching objects split by a distance-transform watershed.

Big images are corrected and thresholded a tile at a time (the background is
estimated on a coarse grid, the global threshold from a sample), so the work
arrays stay small; the result is one label image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .imageops import TILE, grey, intensity_range, sample, tiles
from .shapes import objects_from_mask

__all__ = ["ThresholdParams", "METHODS", "segment_threshold", "foreground_mask",
           "estimate_background"]

METHODS = ("otsu", "li", "local")


@dataclass(frozen=True)
class ThresholdParams:
    """How to find objects by a threshold.

    ``method``: "otsu" | "li" (one threshold for the whole image) | "local" (one
    per neighbourhood of a few object diameters); ``dark``: dark objects on a light
    background; ``diameter``: (min, max) expected diameter in pixels, or None to
    keep every size; ``correct_background``: subtract a smooth background first
    (uneven illumination); ``split_touching``: cut touching objects apart where their
    outline is concave; ``fill_holes``: fill holes inside objects.
    """

    method: str = "otsu"
    dark: bool = False
    diameter: "tuple[float, float] | None" = None
    correct_background: bool = True
    split_touching: bool = True
    fill_holes: bool = True

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"threshold method must be one of {', '.join(METHODS)}, "
                             f"not {self.method!r}")
        if self.diameter is not None:
            low, high = (float(v) for v in self.diameter)
            if not (0 < low <= high):
                raise ValueError(f"diameter must be (min, max) with 0 < min <= max, "
                                 f"not {self.diameter!r}")
            object.__setattr__(self, "diameter", (low, high))


def _object_scale(params: ThresholdParams, shape) -> float:
    """The size (pixels) of the neighbourhood the background and the local threshold
    are taken over: a few of the largest objects, or an eighth of the image."""
    if params.diameter is not None:
        return max(8.0, 3.0 * params.diameter[1])
    return max(8.0, min(shape[:2]) / 8)


def estimate_background(intensity: np.ndarray, scale: float) -> np.ndarray:
    """A smooth background of a grey image (objects bright): the 10th percentile of
    blocks of ``scale`` pixels on a coarse grid, smoothed and brought back to full size
    (float32, the shape of ``intensity``)."""
    from skimage.transform import resize

    step = max(1, int(scale // 8))  # the grid samples the blocks sparsely
    coarse = intensity[::step, ::step].astype(np.float32)
    block = max(2, int(round(scale / step)))
    rows, cols = -(-coarse.shape[0] // block), -(-coarse.shape[1] // block)
    padded = np.pad(coarse, ((0, rows * block - coarse.shape[0]),
                             (0, cols * block - coarse.shape[1])), mode="reflect")
    blocks = padded.reshape(rows, block, cols, block).transpose(0, 2, 1, 3).reshape(rows, cols, -1)
    grid = np.percentile(blocks, 10, axis=2).astype(np.float32)
    grid = ndi.gaussian_filter(grid, 1.0, mode="nearest")
    # each grid value stands for a block's centre: map it to full size
    return resize(grid, intensity.shape[:2], order=1, mode="edge",
                  anti_aliasing=False).astype(np.float32)


def _global_threshold(values: np.ndarray, method: str) -> float:
    from skimage.filters import threshold_li, threshold_otsu

    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        return math.inf  # nothing stands out: no objects
    return float(threshold_otsu(values) if method == "otsu" else threshold_li(values))


def _oriented(image: np.ndarray, dark: bool) -> np.ndarray:
    """Grey float32 with objects bright (a dark-object image is turned over)."""
    values = np.asarray(grey(image), dtype=np.float32)
    if dark:
        lo, hi = intensity_range(values, 0, 100)
        values = (hi + lo) - values
    return values


def _local_mask(values: np.ndarray, scale: float) -> np.ndarray:
    """Local threshold: brighter than the neighbourhood's mean by a share of the
    image's contrast (so that flat background does not turn into noise)."""
    from skimage.filters import threshold_local

    block = int(scale) | 1
    lo, hi = intensity_range(values)
    mask = np.zeros(values.shape, bool)
    for tile in tiles(values.shape, TILE, margin=block):
        part = values[tile.outer]
        local = threshold_local(part, block, method="gaussian", offset=-(hi - lo) * 0.05)
        mask[tile.target] = (part > local)[tile.inner]
    return mask


def foreground_mask(image: np.ndarray, params: ThresholdParams) -> np.ndarray:
    """The boolean mask of object pixels of an image (any units, grey or channels)."""
    values = _oriented(image, params.dark)
    scale = _object_scale(params, values.shape)
    if params.correct_background:
        background = estimate_background(values, scale)
        values = values - background  # a new array: the image is never changed
        del background
    if params.method == "local":
        return _local_mask(values, scale)
    threshold = _global_threshold(sample(values).ravel(), params.method)
    return values > threshold


def segment_threshold(image: np.ndarray, params: ThresholdParams = ThresholdParams()) -> np.ndarray:
    """Objects of an image found by a threshold: a 2-D int32 label image, 0 background,
    1..N objects (N may be 0). ``image`` is H x W or H x W x C in any units."""
    mask = foreground_mask(image, params)
    return objects_from_mask(mask, params.split_touching, params.diameter, params.fill_holes)
