"""Where a network looks: Grad-CAM heatmaps for our networks; no Qt.

Grad-CAM (Selvaraju et al., 2017) weighs a convolutional layer's channels by the
gradient of the predicted class's score and sums them: the map is high where the
features that raised that score are. The gradients come from captum's
``LayerGradCam`` (Meta's PyTorch interpretability library: it needs nothing this
add-on does not already install, while ``grad-cam`` would bring OpenCV, SciPy and
ttach for the same arithmetic).

Images go through embedding's pipeline (core.pipeline.iter_steps: a decoding thread
pool a bounded window ahead, core.images.decode_image, the ModelSpec's
normalisation inside the network), in batches, on the GPU when there is one.
A map is kept at the layer's resolution (a few kilobytes, however big the image)
and brought to the original image's pixels, EXIF rotation included, only when
asked (:meth:`Explanation.heatmap`), so memory stays bounded on big images.
"""
from __future__ import annotations

import contextlib
import copy
import io
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from .budget import shared_budget
from .cancel import Cancelled
from .devices import resolve_device
from .pipeline import iter_steps
from .images import DEFAULT_MAX_PIXELS, ImageError, Skipped, decode_image, read_bytes, \
    shown_size
from .models import ModelSpec, get_spec
from .portable import safe_file_name

__all__ = ["Explanation", "ExplainResult", "Explainer", "NotOurModel", "default_layer",
           "layer_names", "imagenet_classes", "not_ours_message", "overlay", "overlay_image", "explain_images",
           "save_overlays",
           "Cancelled"]

#: the longest side the peak is searched at (finer than any layer's grid by far)
PEAK_SIDE = 1024


class NotOurModel(TypeError):
    """The model is not one of this add-on's networks, so it has no layer to explain."""


def default_layer(spec: "ModelSpec | str") -> str:
    """The last convolutional block of a network (its name inside the backbone): the
    ModelSpec's ``gradcam_layer``; ValueError, saying why, for a network without one."""
    spec = get_spec(spec)
    if spec.gradcam_layer is None:
        raise ValueError(spec.gradcam_note or f"{spec.display_name} has no layer Grad-CAM "
                                              f"can explain.")
    return spec.gradcam_layer


def layer_names(backbone) -> list[str]:
    """Names of the layers ``--layer`` accepts: the convolutional blocks, in order."""
    from torch import nn
    names = []
    for name, module in backbone.named_modules():
        if not name or not any(isinstance(m, nn.Conv2d) for m in module.modules()):
            continue
        depth = name.count(".")
        if depth <= 2 or isinstance(module, nn.Conv2d):
            names.append(name)
    return names


def imagenet_classes() -> "tuple[str, ...]":
    """The 1000 ImageNet class names, in the order the pretrained networks output them."""
    from torchvision.models import SqueezeNet1_1_Weights
    return tuple(SqueezeNet1_1_Weights.IMAGENET1K_V1.meta["categories"])


@dataclass(frozen=True, eq=False)  # compared by identity: it holds an array
class Explanation:
    """One image: the class the network predicts, how sure it is, and where it looked.

    ``cam`` is the Grad-CAM map at the layer's resolution, scaled to a maximum of 1
    (all zeros when nothing in the image raised the class's score); ``size`` is the
    original image's (width, height) with EXIF rotation applied; ``peak`` the map's
    maximum in those pixels, (x right, y down).
    """

    index: int
    source: str
    class_index: int
    predicted: str
    probability: float
    cam: np.ndarray = field(repr=False)
    size: "tuple[int, int]"
    peak: "tuple[int, int]"

    def heatmap(self, size: "tuple[int, int] | None" = None) -> np.ndarray:
        """The map as float32 0..1, height x width, at ``size`` (w, h; default the
        original image's). Bilinear, as the network's input covered the whole image."""
        return resize_map(self.cam, size or self.size)

    def as_dict(self) -> dict:
        """The JSON record: path, predicted, probability, peak_x, peak_y."""
        return {"path": self.source, "predicted": self.predicted,
                "probability": round(float(self.probability), 6),
                "peak_x": int(self.peak[0]), "peak_y": int(self.peak[1])}


@dataclass
class ExplainResult:
    """The explanations of the images that could be read, in input order, and the skips."""

    explanations: "list[Explanation]"
    skipped: "list[Skipped]"


def resize_map(cam: np.ndarray, size: "tuple[int, int]") -> np.ndarray:
    """A layer map brought to (width, height) pixels, bilinear, float32."""
    width, height = int(size[0]), int(size[1])
    image = Image.fromarray(np.ascontiguousarray(cam, dtype=np.float32), "F")
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR),
                      dtype=np.float32).clip(0, 1)


def peak_of(cam: np.ndarray, size: "tuple[int, int]") -> "tuple[int, int]":
    """(x, y) of the map's maximum in an image of ``size`` (w, h) pixels; searched at
    most PEAK_SIDE pixels a side and scaled, so a big image costs no more."""
    width, height = size
    scale = min(1.0, PEAK_SIDE / max(width, height))
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    fine = resize_map(cam, shape)
    y, x = np.unravel_index(int(np.argmax(fine)), fine.shape)
    return (min(width - 1, int((x + 0.5) * width / shape[0])),
            min(height - 1, int((y + 0.5) * height / shape[1])))


def _original_size(data: bytes) -> "tuple[int, int]":
    """(width, height) as the image is shown (EXIF rotation applied), from the header."""
    with Image.open(io.BytesIO(data)) as header:
        return shown_size(header)


def not_ours_message(model) -> str:
    """Why ``model`` cannot be explained, and what to use instead."""
    kind = getattr(model, "name", None) or type(model).__name__
    return (f"This model ({kind}) is not one of Deep Image's networks, so it cannot show "
            f"where it looks: use a model from Deep Image's Trainer (or Load Model of one "
            f"it saved).")


class Explainer:
    """A network ready to explain its predictions; build once, call many times.

    ``net`` is a core.networks.EmbeddingNet whose last layer outputs ``class_names``;
    ``image_size`` is the side it was trained at. ``layer`` names a module of the
    backbone (default: the last convolutional block, :func:`default_layer`).
    """

    def __init__(self, net, class_names: Sequence[str], image_size: "int | None" = None, *,
                 layer: "str | None" = None, device: str = "auto",
                 batch_size: "int | None" = None, workers: "int | None" = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        import torch
        from captum.attr import LayerGradCam
        self.spec: ModelSpec = net.spec
        self.class_names = tuple(str(c) for c in class_names)
        self.image_size = int(image_size or self.spec.input_size)
        self.device = resolve_device(device)
        self.batch_size = batch_size or (32 if self.device.startswith("cuda") else 8)
        self.workers = workers or min(8, os.cpu_count() or 2)
        self.max_pixels = max_pixels
        # a copy of its own: captum's hooks on the layer would also catch the forward
        # passes of anyone predicting with the same network meanwhile (a model in
        # Image Viewer and in Predictions, say)
        self.net = copy.deepcopy(net).eval().to(self.device)
        self.layer = layer or default_layer(self.spec)
        try:
            module = self.net.backbone.get_submodule(self.layer)
        except AttributeError:
            names = layer_names(self.net.backbone)
            raise ValueError(
                f"{self.spec.display_name} has no layer {self.layer!r}; choose one of: "
                f"{', '.join(names[-12:])} (the last convolutional blocks; default "
                f"{default_layer(self.spec)})") from None
        self._torch = torch
        self._gradcam = LayerGradCam(self._top_logit, module)

    @classmethod
    def for_model(cls, model, **options) -> "Explainer":
        """An Explainer for a Trainer's model (learner.ImageClassifierModel, or anything
        with ``net``, ``class_values`` and ``image_size``), or for a registered network's
        ImageNet original by name ("squeezenet", ...; ``random_weights=True`` for tests)."""
        random_weights = options.pop("random_weights", False)
        weights_file = options.pop("weights_file", None)
        if isinstance(model, (str, ModelSpec)):
            from .networks import EmbeddingNet, build_backbone
            spec = get_spec(model)
            backbone = build_backbone(spec)
            if not random_weights:
                from .weights import load_pretrained, locate_weights
                load_pretrained(backbone, spec, locate_weights(spec, weights_file))
            return cls(EmbeddingNet(spec, backbone), imagenet_classes(), spec.input_size,
                       **options)
        net = getattr(model, "net", None) if hasattr(model, "class_values") else None
        from .networks import EmbeddingNet
        if not isinstance(net, EmbeddingNet):
            raise NotOurModel(not_ours_message(model))
        return cls(net, model.class_values, model.image_size, **options)

    # --- the pipeline -------------------------------------------------------------------
    def _prepare(self, source: str):
        """Runs in a decoding thread: (None, None, (network input, original size))."""
        data = read_bytes(source)
        image = decode_image(data, (self.image_size, self.image_size), self.max_pixels,
                             budget=shared_budget())  # as embedding's decoders do
        try:
            size = _original_size(data)
        except Exception as exc:  # decoded above, so this is not expected
            raise ImageError(f"could not read the image size ({exc})") from None
        return None, None, (image, size)

    def _top_logit(self, x):
        """The forward function captum differentiates: each image's highest logit (the
        predicted class's score), so one pass gives the prediction and its map."""
        logits = self.net.backbone(x)
        self._logits = logits.detach()
        return logits.max(1).values

    def _run(self, images: np.ndarray) -> "tuple[np.ndarray, np.ndarray, np.ndarray]":
        """(class indices, probabilities, maps N x h x w) of a uint8 batch."""
        torch = self._torch
        with torch.no_grad():
            x = self.net.preprocess(torch.from_numpy(images).to(self.device)).contiguous()
        with torch.enable_grad():
            maps = self._gradcam.attribute(x, relu_attributions=True)
        probs = torch.softmax(self._logits.double(), 1)
        top, predicted = probs.max(1)
        return (predicted.cpu().numpy(), top.cpu().numpy(),
                maps.detach().float().sum(1).cpu().numpy())

    def iter_explain(self, sources: Sequence[str],
                     progress: "Callable[[int, int], None] | None" = None,
                     should_stop: "Callable[[], bool] | None" = None
                     ) -> Iterator["tuple[list[Explanation], list[Skipped]]"]:
        """Explain ``sources`` (paths or URLs) batch by batch, in input order; raises
        Cancelled when ``should_stop()`` turns true (between batches)."""
        sources = [os.fspath(s) for s in sources]
        window = max(2 * self.batch_size, 4 * self.workers)
        done = 0
        with contextlib.closing(iter_steps(sources, self._prepare, self.batch_size,
                                           self.workers, window, should_stop)) as steps:
            for step in steps:
                out = []
                if step.images:
                    classes, probabilities, maps = self._run(
                        np.stack([image for image, _ in step.images]))
                    for index, (_, size), k, p, cam in zip(
                            step.indices, step.images, classes, probabilities, maps):
                        top = float(cam.max())
                        cam = (cam / top if top > 0 else np.zeros_like(cam)).astype(np.float32)
                        out.append(Explanation(int(index), sources[index], int(k),
                                               self.class_names[int(k)], float(p), cam,
                                               tuple(size), peak_of(cam, size)))
                done += step.handled
                if progress is not None:
                    progress(done, len(sources))
                yield out, list(step.skipped)

    def explain(self, sources: Iterable[str],
                progress: "Callable[[int, int], None] | None" = None,
                should_stop: "Callable[[], bool] | None" = None) -> ExplainResult:
        """Explain all ``sources``; see iter_explain."""
        explanations, skipped = [], []
        for done, missed in self.iter_explain(list(sources), progress, should_stop):
            explanations += done
            skipped += missed
        skipped.sort(key=lambda s: s.index)
        return ExplainResult(explanations, skipped)


def explain_images(model, sources: Iterable[str], *, layer: "str | None" = None,
                   progress=None, should_stop=None, **options) -> ExplainResult:
    """One call: explain ``sources`` with ``model`` (see Explainer.for_model)."""
    return Explainer.for_model(model, layer=layer, **options).explain(
        sources, progress, should_stop)


def _jet() -> np.ndarray:
    """matplotlib's 'jet' colours as a 256 x 3 float32 table (0..255)."""
    global _JET
    if _JET is None:
        from matplotlib import colormaps
        _JET = (colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.float32)
    return _JET


_JET = None


def overlay(image: np.ndarray, heatmap: np.ndarray, strength: float = 0.6) -> np.ndarray:
    """The image (uint8 H x W x 3) with a heatmap (0..1, H x W) laid over it in the
    'jet' colours: where the map is 0 the image shows as it is, at 1 it is ``strength``
    red."""
    if heatmap.shape != image.shape[:2]:
        raise ValueError(f"a {heatmap.shape} heatmap does not fit a {image.shape[:2]} image")
    heat = np.clip(heatmap, 0, 1).astype(np.float32)
    colours = _jet()[(heat * 255).round().astype(np.uint8)]
    alpha = (strength * heat)[..., None]
    out = image * (1 - alpha) + colours * alpha
    return out.round().clip(0, 255).astype(np.uint8)


def overlay_image(explanation: Explanation, max_side: "int | None" = 1024) -> np.ndarray:
    """The explained image with its heatmap over it, at most ``max_side`` pixels a side
    (None: the original size), decoded again as core.images does (EXIF rotation)."""
    width, height = explanation.size
    scale = 1.0 if max_side is None else min(1.0, max_side / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = decode_image(read_bytes(explanation.source), size,
                         max(DEFAULT_MAX_PIXELS, width * height), budget=shared_budget())
    return overlay(image, explanation.heatmap(size))


def save_overlays(explanations: Iterable[Explanation], directory: "str | os.PathLike",
                  max_side: "int | None" = 1024) -> "list[str]":
    """Write each explanation's overlay (overlay_image) as DIRECTORY/<image name>.png;
    a name met before gets -2, -3, ... Returns the paths written, in order."""
    os.makedirs(directory, exist_ok=True)
    written, used = [], set()
    for explanation in explanations:
        name = os.path.basename(explanation.source.replace("\\", "/").rstrip("/"))
        stem = safe_file_name(os.path.splitext(name)[0], "image")
        name, n = stem, 1
        while name.lower() in used:
            n += 1
            name = f"{stem}-{n}"
        used.add(name.lower())
        path = os.path.join(directory, name + ".png")
        # PNG level 3: about half the time of Pillow's default 6, files ~10 % bigger
        Image.fromarray(overlay_image(explanation, max_side)).save(path, compress_level=3)
        written.append(path)
    return written
