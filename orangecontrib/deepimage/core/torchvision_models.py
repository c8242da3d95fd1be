"""Any of torchvision's classification networks as a registry entry, by name.

:func:`torchvision_spec` builds a :class:`~.models.ModelSpec` from torchvision's own
weights enum (``get_model_weights(name).DEFAULT``): its transforms give the
preprocessing (crop size, mean and std), its URL the weights file (torch's hub cache
names it after the URL) and hash prefix, its ``meta`` the parameter count, minimum
size and accuracy. The network is wrapped in core.networks.ClassifierBackbone: the
embedding is the input of its last layer. The Grad-CAM layer is found by running the
network once on the "meta" device (shapes only, no memory, no arithmetic): the last
module whose output is a feature map (N x C x H x W, H and W above 1), as long as no
attention block runs after it. For a vision transformer (vit_*) the last such map is
the patch embedding, before every attention block, so Grad-CAM is not offered there;
Swin and MaxViT end in feature maps and are explained like the convnets.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

from .models import IMAGENET_MEAN, ModelSpec, TrainPreset

__all__ = ["torchvision_names", "torchvision_spec", "build_torchvision", "find_gradcam_layer"]

# torch.hub's own pattern for the hash prefix in a checkpoint's file name
_HASH = re.compile(r"-([a-f0-9]*)\.")
# keyword arguments the builder needs beyond torchvision's defaults
_BUILD_OPTIONS = {"googlenet": {"aux_logits": False, "init_weights": False},
                  "inception_v3": {"aux_logits": False, "init_weights": False}}
# fine-tuning a network torchvision trained: SGD with momentum, as its reference recipe
# for ResNets (lr 0.1 at a batch of 256); the modes scale it (core.presets.preset)
TORCHVISION_PRESET = TrainPreset(optimizer="sgd", learning_rate=0.1, momentum=0.9,
                                 weight_decay=1e-4, dropout=0.2, batch_size=32)
# the smallest side offered to train or embed at, whatever torchvision's meta allows
MIN_SIDE_FLOOR = 32


@functools.lru_cache(maxsize=1)
def torchvision_names() -> "tuple[str, ...]":
    """torchvision's classification networks (``list_models(module=torchvision.models)``)."""
    try:
        import torchvision
        from torchvision.models import list_models
    except ImportError:
        return ()
    return tuple(list_models(module=torchvision.models))


def build_torchvision(name: str, min_input_size: int = 1):
    """An untrained torchvision network ``name`` in a ClassifierBackbone."""
    import warnings

    from torchvision.models import get_model

    from .networks import ClassifierBackbone
    with warnings.catch_warnings():  # GoogLeNet's and Inception's init warnings
        warnings.simplefilter("ignore", FutureWarning)
        net = get_model(name, weights=None, **_BUILD_OPTIONS.get(name, {}))
    return ClassifierBackbone(net, min_input_size)


def _meta_backbone(name: str):
    """The backbone built on the "meta" device (shapes only), or on the CPU for the few
    networks whose construction does arithmetic (RegNet)."""
    import torch
    try:
        with torch.device("meta"):
            return build_torchvision(name), "meta"
    except (NotImplementedError, RuntimeError):
        return build_torchvision(name), "cpu"


def find_gradcam_layer(backbone, size: int, device: str = "meta") -> "str | None":
    """The name (inside the backbone) of the network's module whose output is its last feature map (N x C x H x W with H,
    W > 1), run on a ``size`` x ``size`` input; None when an attention block runs after
    it (a vision transformer's patch embedding) or there is none."""
    import torch
    from torch import nn
    order: list = []
    hooks = [module.register_forward_hook(
        lambda m, i, out, name=name: order.append((name, m, out)))
        for name, module in backbone.net.named_modules() if name]
    try:
        with torch.no_grad():
            backbone.net.eval()(torch.zeros(1, 3, size, size, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    found = None
    pools = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)  # a resampled copy of the map
    for position, (name, module, out) in enumerate(order):
        if isinstance(out, torch.Tensor) and out.dim() == 4 and min(out.shape[2:]) > 1 \
                and name.count(".") <= 2 and not isinstance(module, pools):
            found = position
    if found is None or any(isinstance(m, nn.MultiheadAttention)
                            for _, m, _ in order[found + 1:]):
        return None
    return order[found][0]


def _weights_source(weights) -> str:
    metrics = weights.meta.get("_metrics", {}).get("ImageNet-1K", {})
    accuracy = f", ImageNet top-1 {metrics['acc@1']:.1f} %" if "acc@1" in metrics else ""
    return f"torchvision ({type(weights).__name__}.{weights.name}{accuracy})"


@functools.lru_cache(maxsize=None)
def torchvision_spec(name: str) -> "ModelSpec | None":
    """The spec of torchvision's classification network ``name``; None if there is none
    of that name (or torchvision is not installed)."""
    if name not in torchvision_names():
        return None
    from torchvision.models import get_model_weights
    weights = get_model_weights(name).DEFAULT
    transforms = weights.transforms()
    size = int(transforms.crop_size[0])
    min_size = max(MIN_SIDE_FLOOR, *weights.meta.get("min_size", (1, 1)))
    backbone, device = _meta_backbone(name)
    layer = find_gradcam_layer(backbone, size, device)
    file_name = Path(weights.url).name
    digest = _HASH.search(file_name)
    return ModelSpec(
        name=name,
        display_name=name,
        input_size=size,
        colour_order="RGB",
        mean=tuple(float(m) * 255 for m in transforms.mean) or IMAGENET_MEAN,
        std=tuple(float(s) * 255 for s in transforms.std),
        embedding_layer=f"the input of its last layer ({backbone.head_path})",
        embedding_dim=int(backbone.num_features),
        parameters=int(weights.meta["num_params"]),
        weights_file=file_name,
        weights_source=_weights_source(weights),
        description=f"torchvision's {name}, trained on ImageNet-1k.",
        min_input_size=min(min_size, size),
        weights_url=weights.url,
        weights_sha256=digest.group(1) if digest else None,
        builder=functools.partial(build_torchvision, name, min(min_size, size)),
        weights_enum=f"{type(weights).__name__}.{weights.name}",
        resize=(f"whole image to {size} x {size} (torchvision resizes to "
                f"{transforms.resize_size[0]} and crops the central {size})"),
        gradcam_layer=None if layer is None else f"net.{layer}",
        gradcam_note="" if layer is not None else (
            f"{name} is a vision transformer: its only feature map is the patch "
            f"embedding, before every attention block, so Grad-CAM would not show what "
            f"it attends to. Explain a convolutional network (resnet50, convnext_tiny, "
            f"efficientnet_b0, swin_t, ...) instead."),
        train=TORCHVISION_PRESET,
    )
