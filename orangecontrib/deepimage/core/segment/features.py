"""Pixel features for the pixel classifier.

- "filters": Gaussian-smoothed intensity, gradient magnitude and Hessian
  eigenvalues at scales 1..16 per channel, as scikit-image's
  ``multiscale_basic_features``, plus the intensity minus its surroundings
  (filterfeatures.py);
- "deep": the add-on's SqueezeNet 1.1 conv1, fire3 and fire5 activations brought
  back to pixels (deepfeatures.py; needs a projection fitted on training images);
- "both": the two side by side.

Images are scaled to 0..1 from robust percentiles first (``value_range``, found once
per image), so 16-bit counts and 8-bit copies give the same features. Big images
are computed a tile at a time (:func:`pixel_features_tiles`) with a margin of context.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from .deepfeatures import Projection, deep_feature_count, deep_features, fit_projection
from .filterfeatures import FEATURES_PER_CHANNEL, filter_features
from .imageops import TILE, Tile, intensity_range, scaled, tiles

__all__ = ["FEATURE_SETS", "pixel_features", "pixel_features_tiles", "feature_count",
           "fit_deep_projection", "MARGIN", "tile_size"]

FEATURE_SETS = ("filters", "deep", "both")
#: context around a tile (a multiple of 8, so the filters' small grids align across
#: tiles): the largest filter's reach and fire5's receptive field
MARGIN = 64


def _check(features: str) -> None:
    if features not in FEATURE_SETS:
        raise ValueError(f"features must be one of {', '.join(FEATURE_SETS)}, not {features!r}")


def _as_channels(image: np.ndarray) -> np.ndarray:
    return image[:, :, None] if image.ndim == 2 else image


def tile_size(features: str) -> int:
    """Tile side for a feature set: smaller with deep features (more work per pixel)."""
    return TILE if features == "filters" else TILE // 2


def fit_deep_projection(images: "list[np.ndarray]", features: str) -> "Projection | None":
    """The projection deep features need, fitted on training images; None for "filters"."""
    _check(features)
    if features == "filters":
        return None
    return fit_projection([_as_channels(scaled(image)) for image in images])


def pixel_features(image: np.ndarray, features: str = "filters",
                   value_range: "tuple[float, float] | None" = None,
                   projection: "Projection | None" = None) -> np.ndarray:
    """H x W x F float32 features of every pixel of a (small) image; see module doc.

    ``value_range``: the intensities that map to 0..1 (default: this image's robust
    percentiles; give the whole image's when passing a tile). ``projection``: from
    :func:`fit_deep_projection`, needed for "deep" and "both" (fitted on this image
    alone when missing)."""
    _check(features)
    image01 = _as_channels(scaled(image, value_range))
    parts = []
    if features in ("filters", "both"):
        parts += [filter_features(image01[:, :, c]) for c in range(image01.shape[2])]
    if features in ("deep", "both"):
        parts.append(deep_features(image01, projection or fit_projection([image01])))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


def feature_count(features: str, channels: int) -> int:
    """How many features a pixel of a ``channels``-channel image gets."""
    _check(features)
    filters = channels * FEATURES_PER_CHANNEL
    return {"filters": filters, "deep": deep_feature_count(),
            "both": filters + deep_feature_count()}[features]


def pixel_features_tiles(image: np.ndarray, features: str = "filters",
                         tile: "int | None" = None,
                         value_range: "tuple[float, float] | None" = None,
                         projection: "Projection | None" = None
                         ) -> Iterator[tuple[Tile, np.ndarray]]:
    """(tile, its features h x w x F) for each tile of a big image, computed with a
    margin of context so that tiles join without seams."""
    _check(features)
    value_range = value_range or intensity_range(image)
    for part in tiles(image.shape, tile or tile_size(features), MARGIN):
        feats = pixel_features(image[part.outer], features, value_range, projection)
        yield part, feats[part.inner]
