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
           "estimate_background", "Background"]

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
    are taken over: a few of the largest objects, or an eighth of the image (at least
    64 pixels)."""
    if params.diameter is not None:
        return max(8.0, 2.0 * params.diameter[1])
    return max(64.0, min(shape[:2]) / 8)


@dataclass(frozen=True)
class Background:
    """A smooth background as a coarse grid: ``grid[i, j]`` is the value at the centre
    of block (i, j) of an image of ``shape``; :meth:`at` interpolates it anywhere."""

    grid: np.ndarray
    shape: tuple[int, int]

    def _axis(self, where: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cells = self.grid.shape[axis]
        position = (where.astype(np.float32) + 0.5) * (cells / self.shape[axis]) - 0.5
        position = np.clip(position, 0, cells - 1)
        low = np.minimum(position.astype(np.intp), max(cells - 2, 0))
        return low, np.minimum(low + 1, cells - 1), (position - low).astype(np.float32)

    def at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """len(rows) x len(cols) float32 background at those pixel rows and columns."""
        low, high, w = self._axis(rows, 0)
        part = self.grid[low] * (1 - w)[:, None] + self.grid[high] * w[:, None]
        low, high, w = self._axis(cols, 1)
        return part[:, low] * (1 - w) + part[:, high] * w

    def window(self, where: tuple[slice, slice]) -> np.ndarray:
        """The background of a rectangle of the image (slices with start and stop)."""
        return self.at(np.arange(where[0].start, where[0].stop), np.arange(where[1].start, where[1].stop))


def estimate_background(intensity: np.ndarray, scale: float) -> Background:
    """A smooth background of a grey image (objects bright): the 10th percentile of
    blocks of about ``scale`` pixels (from a sparse grid of their pixels), smoothed."""
    step = max(1, int(scale // 8))  # the grid samples the blocks sparsely
    coarse = np.asarray(intensity[::step, ::step], dtype=np.float32)
    block = max(2, int(round(scale / step)))
    rows, cols = -(-coarse.shape[0] // block), -(-coarse.shape[1] // block)
    padded = np.pad(coarse, ((0, rows * block - coarse.shape[0]),
                             (0, cols * block - coarse.shape[1])), mode="reflect")
    blocks = padded.reshape(rows, block, cols, block).transpose(0, 2, 1, 3).reshape(rows, cols, -1)
    grid = np.percentile(blocks, 10, axis=2).astype(np.float32)
    grid = ndi.gaussian_filter(grid, 1.0, mode="nearest")
    # the grid's blocks cover rows * block * step pixels, a little more than the image
    covered = (rows * block * step, cols * block * step)
    return Background(grid, covered)


def _global_threshold(values: np.ndarray, method: str) -> float:
    from skimage.filters import threshold_li, threshold_otsu

    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        return math.inf  # nothing stands out: no objects
    return float(threshold_otsu(values) if method == "otsu" else threshold_li(values))


class _Oriented:
    """Grey float32 values of an image, objects bright (a dark-object image turned
    over), read a window at a time so the whole image is never copied as floats."""

    def __init__(self, image: np.ndarray, dark: bool):
        self.image, self.dark = image, dark
        self.shape = image.shape[:2]
        self.flip = sum(intensity_range(grey(sample(image)), 0, 100)) if dark else None

    def __getitem__(self, where) -> np.ndarray:
        values = np.asarray(grey(self.image[where]), dtype=np.float32)
        return self.flip - values if self.dark else values


#: the threshold is applied to the image smoothed by a Gaussian of this sigma (pixels),
#: so that noise does not fray the outlines into specks (CellProfiler smooths too)
SMOOTHING = 1.0


def _corrected(source: _Oriented, background: "Background | None", where,
               smooth: bool = True) -> np.ndarray:
    values = source[where]
    if background is not None:
        rows = np.arange(source.shape[0])[where[0]]
        cols = np.arange(source.shape[1])[where[1]]
        values = values - background.at(rows, cols)
    return ndi.gaussian_filter(values, SMOOTHING, mode="nearest") if smooth else values


def _local_mask(source: _Oriented, background, scale: float) -> np.ndarray:
    """Local threshold: brighter than the neighbourhood's mean by a share of the
    image's contrast (so that flat background does not turn into noise)."""
    from skimage.filters import threshold_local

    block = int(scale) | 1
    lo, hi = intensity_range(_corrected(source, background, (slice(None, None, 4),) * 2, False))
    mask = np.zeros(source.shape, bool)
    for tile in tiles(source.shape, TILE, margin=block):
        part = _corrected(source, background, tile.outer)
        local = threshold_local(part, block, method="gaussian", offset=-(hi - lo) * 0.05)
        mask[tile.target] = (part > local)[tile.inner]
    return mask


def foreground_mask(image: np.ndarray, params: ThresholdParams) -> np.ndarray:
    """The boolean mask of object pixels of an image (any units, grey or channels),
    computed a tile at a time."""
    source = _Oriented(image, params.dark)
    scale = _object_scale(params, source.shape)
    background = None
    if params.correct_background:
        step = max(1, int(scale // 8))
        background = estimate_background(source[::step, ::step], scale / step)
        background = Background(background.grid, (background.shape[0] * step,
                                                  background.shape[1] * step))
    if params.method == "local":
        return _local_mask(source, background, scale)
    stride = max(1, int(np.sqrt(source.shape[0] * source.shape[1] / (1 << 20))))
    threshold = _global_threshold(
        _corrected(source, background, (slice(None, None, stride),) * 2, stride == 1).ravel(),
        params.method)
    mask = np.zeros(source.shape, bool)
    for tile in tiles(source.shape, TILE, margin=4):
        mask[tile.target] = (_corrected(source, background, tile.outer) > threshold)[tile.inner]
    return mask


def segment_threshold(image: np.ndarray, params: ThresholdParams = ThresholdParams()) -> np.ndarray:
    """Objects of an image found by a threshold: a 2-D int32 label image, 0 background,
    1..N objects (N may be 0). ``image`` is H x W or H x W x C in any units."""
    mask = foreground_mask(image, params)
    return objects_from_mask(mask, params.split_touching, params.diameter, params.fill_holes)
