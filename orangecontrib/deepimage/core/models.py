"""The model registry: one frozen :class:`ModelSpec` per network.

A spec carries everything a caller needs to feed the network correctly: the
input size, the colour order and the normalisation live here, never in callers
(the pattern of torchvision's weight enums). Building the network itself lives
in :mod:`.networks` and is imported only when a network is needed, so listing
models costs nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ModelSpec", "MODELS", "get_spec", "model_names", "UnknownModel"]

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


class UnknownModel(KeyError):
    """Raised for a model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError quotes its message; we do not want that
        return str(self.args[0])


@dataclass(frozen=True)
class ModelSpec:
    """What a network is and how it must be fed.

    ``mean`` and ``std`` are per channel, in ``colour_order``, on the 0..255
    pixel scale: the network sees ``(pixel - mean) / std``.
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
    min_input_size: int  # the smallest image side the architecture accepts (networks.py checks)
    weights_url: "str | None" = None  # where torchvision's weights download from; None: shipped
    weights_sha256: "str | None" = None  # a prefix of the weights file's SHA-256 (torch.hub's check)
    aliases: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if self.colour_order not in ("RGB", "BGR"):
            raise ValueError(f"colour_order must be RGB or BGR, not {self.colour_order!r}")

    @property
    def input_shape(self) -> tuple[int, int]:
        """(width, height) the image is resized to."""
        return self.input_size, self.input_size

    def describe(self) -> dict:
        """The description a server's /v1/models gives of this network, as the client
        knows it without asking (dim None: told by the server after the first image)."""
        return {"name": self.name, "title": self.display_name, "dim": None,
                "input_size": self.input_size, "device": None, "weights_id": None,
                "fine_tuned": False}


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
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
        ),
        ModelSpec(
            name="vgg16",
            display_name="VGG-16",
            input_size=224,
            colour_order="RGB",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            embedding_layer="fc7 after ReLU",
            embedding_dim=4096,
            parameters=138_357_544,
            weights_file="vgg16-397923af.pth",
            weights_source="torchvision (VGG16_Weights.IMAGENET1K_V1)",
            description="16-layer network from Oxford's Visual Geometry Group.",
            min_input_size=32,  # five 2x2 max-pools; the adaptive pool makes 7x7 of what is left
            weights_url="https://download.pytorch.org/models/vgg16-397923af.pth",
            weights_sha256="397923af",
            aliases=("vgg-16",),
        ),
        ModelSpec(
            name="vgg19",
            display_name="VGG-19",
            input_size=224,
            colour_order="RGB",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            embedding_layer="fc7 after ReLU",
            embedding_dim=4096,
            parameters=143_667_240,
            weights_file="vgg19-dcbb9e9d.pth",
            weights_source="torchvision (VGG19_Weights.IMAGENET1K_V1)",
            description="19-layer network from Oxford's Visual Geometry Group.",
            min_input_size=32,  # five 2x2 max-pools; the adaptive pool makes 7x7 of what is left
            weights_url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
            weights_sha256="dcbb9e9d",
            aliases=("vgg-19",),
        ),
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
        ),
    )
}

_ALIASES = {alias: spec.name for spec in MODELS.values() for alias in spec.aliases}


def model_names() -> list[str]:
    """Names of all registered networks, the default (SqueezeNet) first."""
    return list(MODELS)


def get_spec(name: "str | ModelSpec") -> ModelSpec:
    """Return the spec of a network by name (case-insensitive, aliases allowed)."""
    if isinstance(name, ModelSpec):
        return name
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return MODELS[key]
    except KeyError:
        raise UnknownModel(
            f"Unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None
