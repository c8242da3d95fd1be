"""What a training run gives back (EpochRecord, TrainResult) and the split it validates
on; no Qt, no Orange."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..images import Skipped
from ..presets import TrainConfig

__all__ = ["EpochRecord", "TrainResult", "stratified_split", "weights_fingerprint"]


@dataclass(frozen=True)
class EpochRecord:
    """One epoch, for the widget's live plot. Validation values are NaN without a split."""

    epoch: int  # 1-based, counted across phases
    phase: str  # "head" (last layer only) or "network"
    train_loss: float
    train_accuracy: float
    val_loss: float  # the training loss's own measure (label smoothing and all)
    val_accuracy: float
    seconds: float
    val_nll: float = math.nan  # validation cross-entropy without label smoothing
    # logistic regression on the pretrained network's embeddings, fitted on the training
    # split and scored on the same validation split (core.train.baseline); NaN: none
    baseline_accuracy: float = math.nan


@dataclass(frozen=True)
class TrainResult:
    """A trained network (an EmbeddingNet on the CPU, in eval mode) and how it got there."""

    net: object
    config: TrainConfig
    n_classes: int
    history: "tuple[EpochRecord, ...]"
    best_epoch: int  # the epoch whose weights ``net`` has
    stopped_early: bool
    cancelled: bool
    skipped: "tuple[Skipped, ...]"  # training images that could not be read
    class_counts: "tuple[int, ...]"  # usable training rows per class (the prior)
    seconds: float
    device: str
    baseline_accuracy: float = math.nan  # see EpochRecord.baseline_accuracy
    budget_note: str = ""  # what the time budget (or small images) changed; "" if nothing

    @property
    def image_size(self) -> int:
        return self.config.size

    @property
    def best(self) -> "EpochRecord | None":
        return next((r for r in self.history if r.epoch == self.best_epoch), None)


def weights_fingerprint(net) -> str:
    """A stable short digest of a network's weights (names, shapes and values)."""
    import hashlib
    digest = hashlib.blake2b(digest_size=12)
    for name, tensor in sorted(net.state_dict().items()):
        digest.update(name.encode())
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(str(array.shape).encode() + array.tobytes())
    return digest.hexdigest()


def stratified_split(labels: np.ndarray, fraction: float,
                     seed: int) -> "tuple[np.ndarray, np.ndarray]":
    """(train, validation) positions; each class with 2+ rows gives at least one row
    to each side. Empty validation when ``fraction`` is 0 or too few rows."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        n_val = 0
        if fraction > 0 and len(rows) >= 2:
            n_val = min(max(1, int(round(len(rows) * fraction))), len(rows) - 1)
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
