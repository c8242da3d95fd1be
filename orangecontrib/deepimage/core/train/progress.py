"""The progress arithmetic of a training run, in one place: a total planned when the run
starts that never changes, and ``done`` that only rises; no Qt, no Orange."""
from __future__ import annotations

import math

import numpy as np

from ..cancel import ProgressCallback
from ..presets import TrainConfig
from .records import stratified_split

__all__ = ["Progress", "phase_epochs", "planned_work"]



class Progress:
    """``(done, total)`` for the progress callback. The total is planned when the run
    starts and never changes; ``done`` only rises. Work that turns out not to be needed
    (unreadable images, epochs after an early stop, a merged last batch) is counted as
    done as soon as that is known."""

    def __init__(self, callback: "ProgressCallback | None", total: int):
        self.callback, self.total, self.done = callback, max(int(total), 1), 0

    def step(self, n: int = 1) -> None:
        if n <= 0:
            return
        self.done = min(self.done + int(n), self.total)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def advance_to(self, position: int) -> None:
        self.step(int(position) - self.done)

    def finish(self) -> None:
        self.advance_to(self.total)


def phase_epochs(config: TrainConfig) -> "tuple[int, int]":
    """(epochs of the last layer alone, epochs of the whole network)."""
    if config.mode == "last-layer":
        return config.epochs, 0
    return (config.head_epochs if config.mode == "fine-tune" else 0), config.epochs


def planned_work(labels: np.ndarray, config: TrainConfig) -> "tuple[int, ...]":
    """Progress units of a run on these labels, roughly in proportion to the time each
    takes: (images loaded, images embedded for fine-tuning's last-layer epochs, all the
    last-layer epochs (a unit per batch of embeddings), all the network epochs (a unit
    per image, trained or validated))."""
    train, val = stratified_split(labels, config.validation_fraction, config.seed)
    head, network = phase_epochs(config)
    batches = sum(math.ceil(len(rows) / config.batch_size) for rows in (train, val))
    embedding = len(labels) if config.mode == "fine-tune" and head else 0
    return len(labels), embedding, batches * head, len(labels) * network
