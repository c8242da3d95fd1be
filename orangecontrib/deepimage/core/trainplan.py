"""What a training run will do, planned before it starts: the stratified validation
split, the epochs of each phase, and the progress units, counted in one place
(:class:`RunProgress`: one total for the whole run, which never changes). No Qt, no torch.
"""
from __future__ import annotations

import math

import numpy as np

from .cancel import ProgressCallback
from .presets import TrainConfig

__all__ = ["stratified_split", "phase_epochs", "planned_work", "RunProgress"]


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


class RunProgress:
    """``(done, total)`` for the progress callback. The total is planned when the run
    starts (:func:`planned_work` of all labels) and never changes; ``done`` only rises.
    Work that turns out not to be needed (unreadable images, epochs after an early stop,
    a merged last batch) is counted as done as soon as that is known.

    Within a phase (:meth:`start_phase`) a batch counts its images in the network phase
    and 1 on embeddings (:meth:`batch`), and each epoch ends at its planned share."""

    def __init__(self, callback: "ProgressCallback | None", labels: np.ndarray,
                 config: TrainConfig):
        self.callback, self.config, self.done = callback, config, 0
        self.total = max(int(sum(planned_work(labels, config))), 1)
        self.per_image, self.phase_start, self.per_epoch = False, 0, 0

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

    def loaded(self, done: int, total: int) -> None:
        """The progress callback of loading (or embedding) the images: ``done`` of them."""
        self.step(done - self.done)

    def usable(self, labels: np.ndarray) -> "tuple[int, int, int]":
        """The images that could be read have ``labels``: what the others would have cost
        is done. Returns the units of (embedding, last-layer epochs, network epochs)."""
        _, embed, head, network = planned_work(labels, self.config)
        self.advance_to(self.total - embed - head - network)
        return embed, head, network

    def start_phase(self, per_epoch: int, per_image: bool) -> None:
        """A phase starts here: ``per_epoch`` units an epoch; batches count images or 1."""
        self.phase_start, self.per_epoch, self.per_image = self.done, per_epoch, per_image

    def batch(self, n: int) -> None:
        """A batch of ``n`` rows was trained or validated."""
        self.step(n if self.per_image else 1)

    def end_epochs(self, epochs: int) -> None:
        """``epochs`` epochs of the phase are over (all of them at an early stop)."""
        self.advance_to(self.phase_start + epochs * self.per_epoch)
