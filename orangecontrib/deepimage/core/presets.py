"""What decides a training run: TrainConfig, the presets per architecture, and the
image size a run trains at when none is chosen. No Qt, no Orange, no torch.

core.train (the loop) and core.predict (inference) use these; callers import them
from core.train as before.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .images import is_url, shown_size
from .models import get_spec

__all__ = ["MODES", "OPTIMIZERS", "MIN_IMAGE_SIZE", "TrainConfig", "preset",
           "auto_image_size", "image_sides", "median_side", "size_for_images", "fit_to_images", "floor_epochs",
           "enlarged_to_floor"]

MODES = ("last-layer", "fine-tune", "scratch")
OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw")


class _MinImageSize(Mapping):
    """The smallest image side each architecture accepts, by name: its ModelSpec's, the
    one source (any registered or torchvision network; iterating gives the registered)."""

    def __getitem__(self, name: str) -> int:
        return get_spec(name).min_input_size

    def __iter__(self):
        from .models import MODELS
        return iter(MODELS)

    def __len__(self) -> int:
        from .models import MODELS
        return len(MODELS)


MIN_IMAGE_SIZE: Mapping = _MinImageSize()


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. ``preset(model, mode)`` gives the
    defaults per architecture; change fields with ``dataclasses.replace``."""

    model: str = "squeezenet"
    mode: str = "fine-tune"
    epochs: int = 10
    image_size: "int | None" = None  # None: chosen from the images (size_for_images)
    batch_size: int = 32
    learning_rate: float = 0.01
    optimizer: str = "sgd"  # "sgd" (with momentum), "rmsprop", "adam" or "adamw"
    momentum: float = 0.9
    weight_decay: float = 2e-4
    dropout: float = 0.5  # before the last layer
    label_smoothing: float = 0.0
    aux_loss_weight: float = 0.0  # Inception v3's auxiliary classifier (299 px and up)
    flip: bool = True  # random horizontal flips
    scale_jitter: float = 0.0  # enlarge up to (1 + this) and crop back: VGG's scale jitter
    crop_scale: float = 1.0  # random resized crops of this share of the area and up (1: none)
    shift: float = 0.0  # random shifts of up to this share of the side, per image
    ramp_augment: bool = False  # crops and shifts grow from none over the warm-up
    tta: int = 1  # views averaged when predicting: 1 (none) or 5 (as is + 4 shifts)
    head_epochs: int = 10  # fine-tune: epochs of the last layer alone, before the network
    head_learning_rate: float = 1e-3  # the last layer trains with Adam (core.schedule)
    backbone_lr_factor: float = 0.1  # fine-tune: earliest layers at lr x this, rising to lr
    network_head_factor: float = 0.1  # fine-tune: the last layer's rate after the switch, x
    warmup_epochs: float = 1.0  # whole network: rates rise linearly over this many epochs
    ema_epochs: float = 0.0  # whole network: validate and keep an average of the weights
    # over about this many epochs' steps (core.train.average; 0: the weights as they are)
    max_grad_norm: float = 0.0  # whole network: cap the gradients' norm (0: no cap)
    cap_growth: float = 1.0  # ... and let the cap grow by this factor per epoch (1: fixed)
    validation_fraction: float = 0.2  # stratified; 0 turns early stopping off
    patience: int = 3  # epochs without a better validation loss before stopping
    class_weighting: bool = True  # weight classes inversely to their frequency
    time_budget: "float | None" = None  # seconds for the whole run (None: no limit)
    seed: int = 0
    device: str = "auto"  # "auto", "cpu" or "cuda"
    random_weights: bool = False  # untrained start for "last-layer"/"fine-tune" (tests)
    weights_file: "str | None" = None  # pretrained weights instead of the standard file

    def __post_init__(self):
        spec = get_spec(self.model)
        object.__setattr__(self, "model", spec.name)
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}, "
                            f"not {self.optimizer!r}")
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be at least 1")
        if not (self.learning_rate > 0 and self.head_learning_rate > 0):
            problems.append("the learning rates must be above 0")
        if not 0 <= self.validation_fraction < 1:
            problems.append("the validation fraction must be at least 0 and below 1")
        if self.head_epochs < 0 or self.patience < 1:
            problems.append("head_epochs must be at least 0 and patience at least 1")
        if not (self.max_grad_norm >= 0 and self.cap_growth >= 1):
            problems.append("max_grad_norm must be at least 0 (0: no cap) and cap_growth at "
                            "least 1 (1: the same cap in every epoch)")
        if not (self.warmup_epochs >= 0 and self.ema_epochs >= 0
                and 0 < self.backbone_lr_factor <= 1):
            problems.append("warmup_epochs and ema_epochs must be at least 0 and "
                            "backbone_lr_factor above 0 and at most 1")
        smallest = spec.min_input_size
        if self.image_size is not None and not smallest <= int(self.image_size) <= 1024:
            problems.append(f"{spec.display_name} needs images of at least {smallest} x "
                            f"{smallest} pixels (at most 1024); choose an image size between "
                            f"{smallest} and 1024, or leave it empty for the native "
                            f"{spec.input_size}")
        if not (0 < self.crop_scale <= 1 and 0 <= self.shift < 0.5 and self.tta in (1, 5)):
            problems.append("crop_scale must be above 0 and at most 1, shift at least 0 and "
                            "below 0.5, tta 1 or 5")
        if self.time_budget is not None and not self.time_budget > 0:
            problems.append("the time budget must be above 0 seconds (None: no limit)")
        if problems:
            raise ValueError("Cannot train: " + "; ".join(problems) + ".")

    @property
    def size(self) -> int:
        """The image side the network is trained and used at; the network's native size
        while ``image_size`` is None (train_classifier chooses one from the images)."""
        return int(self.image_size or get_spec(self.model).input_size)


# Fine-tuning, every network (measured on SqueezeNet: benchmarks/README.md, "The recipe"):
# the last layer alone on the embeddings, then the whole network with AdamW on a one-cycle
# schedule, the backbone at a tenth of the last layer's rate.
FINE_TUNE_RECIPE = dict(
    optimizer="adamw", weight_decay=0.01, learning_rate=1e-4, head_learning_rate=1e-3,
    network_head_factor=1.0, backbone_lr_factor=1.0, head_epochs=5, epochs=12,
    warmup_epochs=4.0, ema_epochs=1.0, patience=6, label_smoothing=0.1, max_grad_norm=0.0,
    cap_growth=1.0, flip=False, crop_scale=0.75, shift=0.1, tta=5, batch_size=32)


# From scratch, every network (measured on SqueezeNet: benchmarks/README.md, "presets per
# mode"): the papers' SGD and RMSProp settings learnt nothing of 400-1,200 images (chance on
# every fold); AdamW at 5e-4 with a warm-up learnt the 1,797 digits.
SCRATCH_RECIPE = dict(
    optimizer="adamw", learning_rate=5e-4, weight_decay=0.05, warmup_epochs=2.0,
    ema_epochs=1.0, label_smoothing=0.1, flip=False, crop_scale=0.75, shift=0.1,
    scale_jitter=0.0, tta=5, epochs=30, patience=10)
# The last layer alone on fixed embeddings (Adam at head_learning_rate): 100 epochs and a
# patience of 10 stopped before the digits' optimum (best epoch 100 of 100)
LAST_LAYER_RECIPE = dict(epochs=300, patience=30, batch_size=64)


def preset(model: str = "squeezenet", mode: str = "fine-tune") -> TrainConfig:
    """Defaults per architecture and mode. The architecture's own come from its
    ModelSpec's ``train`` preset (core.models).

    Each network's own preset (its ModelSpec's ``train``) records the paper that
    introduced it (torchvision's other networks: torchvision's reference recipe).
    SqueezeNet 1.1 (Iandola et al.): SGD with momentum 0.9, weight decay 2e-4, dropout 0.5
    before conv10. VGG (Simonyan & Zisserman): SGD momentum 0.9, weight decay 5e-4,
    dropout 0.5, scale jitter and flips. Inception v3 (Szegedy et al.): RMSProp (decay
    0.9, epsilon 1.0), label smoothing 0.1, auxiliary loss (weight 0.4). The modes keep its
    batch size, dropout and auxiliary loss, and set the rest:

    "scratch" is one recipe for every network (``SCRATCH_RECIPE``): AdamW at 5e-4
    (weight decay 0.05), the rate rising over 2 epochs and then decaying along a cosine,
    up to 30 epochs (patience 10), the average of the weights kept, label smoothing 0.1,
    the fine-tuning recipe's crops and shifts, 5 views when predicting. With the papers'
    settings SqueezeNet learnt nothing of 1,797 digits, 600 shapes or 400 photo patches
    (10% right: chance); with this it learnt the digits (0.95), not the smaller sets:
    from scratch needs many images.

    "fine-tune" is one recipe for every network (``FINE_TUNE_RECIPE``, after fastai's
    ``fine_tune`` and timm's training script): up to 5 epochs of the last layer alone on
    the embeddings (Adam at 1e-3, with the dropout the network later runs with), then up to
    12 of the whole network with AdamW (weight decay 0.01) on a one-cycle schedule: every
    rate rises from near zero over 4 epochs (which also warms the backbone up at the switch)
    and decays along a cosine; the last layer at 1e-3, the backbone at 1e-4 (a tenth).
    The whole network is validated and kept as an average of its weights over about the
    last epoch's steps (``ema_epochs``; Polyak averaging, timm's ModelEma), which starts
    at the weights of the switch: without it, the first epoch of cropped and shifted
    images raised the validation loss by 11% on one seed of six. Label smoothing 0.1;
    light augmentation (random resized crops of 75-100% of the area and
    shifts of up to 10% of the side; no flips, which turn digits and letters into other
    things); predictions average 5 views (as is and shifted 5% each way: ``tta``).
    On three image sets it beat logistic regression on the network's embeddings (the
    SGD preset it replaces lost to it on silhouettes) with no loss spike at the switch.

    "last-layer": a linear layer on fixed embeddings (Adam), up to 300 cheap epochs
    (patience 30: ``LAST_LAYER_RECIPE``). benchmarks/README.md has the measurements.
    """
    spec = get_spec(model)
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}: choose one of {', '.join(MODES)}.")
    base = spec.train.fields()
    if mode == "fine-tune":
        base.update(FINE_TUNE_RECIPE, batch_size=min(base["batch_size"], 32),
                    scale_jitter=0.0)
        base.update(dict(spec.train.fine_tune))  # a network's own differences, if any
    elif mode == "scratch":
        base.update(SCRATCH_RECIPE, batch_size=min(base["batch_size"], 32))
    else:  # a linear layer on fixed embeddings (Adam, head_learning_rate): many cheap epochs
        base.update(LAST_LAYER_RECIPE)
    return TrainConfig(model=spec.name, mode=mode, **base)


# The image size chosen for images of a given size (auto_image_size). Lesson 2 measured
# 64-px digits at 64, 96 and 227 px: 96 was as accurate as 227 and several times faster,
# 64 less accurate. The floor was 64 px until benchmarks/train_recipe.py measured 80 px
# with 10 network epochs instead of 15 (the same cost: an 80-px step costs 1.5 x a 64-px one)
# better on 32-px digits, shapes and photo patches (benchmarks/README.md, "small images").
AUTO_SIZE_SCALE = 1.5  # of the images' median shorter side
AUTO_SIZE_STEP = 32  # rounded up to a multiple of this
AUTO_SIZE_FLOOR = 80  # never below, however small the images
AUTO_SIZE_SAMPLE = 200  # image headers read to find the median
# fine-tuning images enlarged to the floor: this share of the whole network's epochs, the
# measured 10 of the recipe's 12 (80 px for 10 epochs costs what 64 px for 15 did)
FLOOR_EPOCH_SHARE = 10 / 12


def floor_epochs(epochs: int) -> int:
    """The whole network's epochs for fine-tuning images enlarged to the floor."""
    return max(1, round(epochs * FLOOR_EPOCH_SHARE))


def _rule_size(median_side: float) -> int:
    return math.ceil(AUTO_SIZE_SCALE * median_side / AUTO_SIZE_STEP) * AUTO_SIZE_STEP


def auto_image_size(median_side: "float | None", model: str = "squeezenet") -> int:
    """The side to train ``model`` at for images whose median shorter side is
    ``median_side``: 1.5 x that, rounded up to a multiple of 32, at least 80 px (and the
    network's smallest size) and at most its native size, which is also the answer when
    the side is unknown. 32-px images train at 80 px, 64-px images at 96, photos natively."""
    spec = get_spec(model)
    if median_side is None or not median_side > 0:
        return spec.input_size
    size = _rule_size(median_side)
    return int(min(spec.input_size, max(size, AUTO_SIZE_FLOOR, spec.min_input_size)))


def enlarged_to_floor(median_side: "float | None", model: str = "squeezenet") -> bool:
    """Whether images of this median side train at the size floor, larger than the rule's
    1.5 x (images under about 43 px)."""
    if median_side is None or not median_side > 0:
        return False
    floor = max(AUTO_SIZE_FLOOR, get_spec(model).min_input_size)
    return _rule_size(median_side) < floor == auto_image_size(median_side, model)


def image_sides(sources: Sequence[str], sample: int = AUTO_SIZE_SAMPLE) -> "list[int]":
    """Shorter sides (as shown: EXIF rotation counts) of up to ``sample`` images spread
    evenly over ``sources``, from their headers alone. URLs (which would have to be
    downloaded twice) and files that cannot be opened are left out."""
    from PIL import Image
    sources = list(sources)
    picks = np.unique(np.linspace(0, len(sources) - 1, min(sample, len(sources))).astype(int)) \
        if sources else []
    sides = []
    for i in picks:
        source = os.fspath(sources[i])
        if is_url(source):
            continue
        try:
            with Image.open(source) as image:
                sides.append(min(shown_size(image)))
        except Exception:  # unreadable files are reported by decoding, not here
            continue
    return sides


def median_side(sources: Sequence[str]) -> "float | None":
    """The median shorter side of these images (see image_sides); None if none is read."""
    sides = image_sides(sources)
    return float(np.median(sides)) if sides else None


def size_for_images(sources: Sequence[str], model: str = "squeezenet") -> int:
    """auto_image_size for the median shorter side of these images (see image_sides)."""
    return auto_image_size(median_side(sources), model)


_UNREAD = object()


def fit_to_images(config: TrainConfig, sources: Sequence[str],
                  median: "float | None" = _UNREAD) -> TrainConfig:
    """``config`` with the image size chosen from these images when it has none
    (auto_image_size; "last-layer" keeps none: it trains on the embeddings at the native
    size). Fine-tuning images small enough to be enlarged to the floor (80 px) trains the
    whole network for ``FLOOR_EPOCH_SHARE`` of the epochs (12 -> 10): as long as 15 at
    64 px took, and more accurate (benchmarks/README.md). ``median``: the images' median
    side when the caller has read it (median_side), else it is read here."""
    if config.image_size is not None or config.mode == "last-layer":
        return config
    if median is _UNREAD:
        median = median_side(sources)
    changes = {"image_size": auto_image_size(median, config.model)}
    if config.mode == "fine-tune" and enlarged_to_floor(median, config.model):
        changes["epochs"] = floor_epochs(config.epochs)
    return dataclasses.replace(config, **changes)
