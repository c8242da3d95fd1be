"""Small array helpers the segmenters share: grey intensity scaled to 0..1 from
robust percentiles of a sample (so a 16-bit image and its 8-bit copy segment alike),
and tiles with margins, so that big images are filtered a piece at a time."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

__all__ = ["Tile", "tiles", "sample", "intensity_range", "grey", "scaled", "TILE"]

#: tile side for filtering big images (pixels); a tile's work arrays stay in the
#: tens of megabytes
TILE = 1024
_SAMPLE = 1 << 20  # values used to estimate ranges and thresholds


@dataclass(frozen=True)
class Tile:
    """``outer``: the slices read (the tile and its margin); ``inner``: where the
    tile lies inside what was read; ``target``: where it goes in the whole image."""

    outer: tuple[slice, slice]
    inner: tuple[slice, slice]
    target: tuple[slice, slice]


def tiles(shape: tuple[int, ...], tile: int = TILE, margin: int = 0) -> Iterator[Tile]:
    """Tiles covering an image of ``shape`` (H, W, ...), each with ``margin``
    pixels of context on every side where the image has them."""
    height, width = shape[:2]
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            o_top, o_left = max(0, top - margin), max(0, left - margin)
            o_bottom, o_right = min(height, bottom + margin), min(width, right + margin)
            yield Tile((slice(o_top, o_bottom), slice(o_left, o_right)),
                       (slice(top - o_top, bottom - o_top), slice(left - o_left, right - o_left)),
                       (slice(top, bottom), slice(left, right)))


def sample(image: np.ndarray, size: int = _SAMPLE) -> np.ndarray:
    """About ``size`` pixels of an image on a regular grid (a view, no copy)."""
    step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / size)))
    return image[::step, ::step]


def intensity_range(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """The ``low`` and ``high`` percentiles of all channels together, from a sample."""
    values = sample(image).astype(np.float32)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, (low, high))
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def grey(image: np.ndarray) -> np.ndarray:
    """H x W (x C) in any units -> H x W, the mean of the channels (a view for 2-D)."""
    if image.ndim == 2:
        return image
    if image.ndim == 3:
        if image.shape[2] == 1:
            return image[:, :, 0]
        return image.mean(axis=2, dtype=np.float32)
    raise ValueError(f"an image is H x W or H x W x C, not an array of shape {image.shape}")


def scaled(image: np.ndarray, value_range: "tuple[float, float] | None" = None) -> np.ndarray:
    """float32 copy scaled so that the range (default: robust percentiles) is 0..1;
    values outside are kept (not clipped), NaN becomes 0."""
    lo, hi = value_range or intensity_range(image)
    out = image.astype(np.float32)
    out -= lo
    out *= 1.0 / (hi - lo)
    np.nan_to_num(out, copy=False)
    return out
