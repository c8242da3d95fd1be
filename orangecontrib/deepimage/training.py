"""The Trainer widget's work, without Qt: train an ImageClassifierLearner on a table.

``run_training(data, learner, state)`` runs in the widget's worker thread
(Orange's ConcurrentWidgetMixin, as in Orange/widgets/data/owoutliers.py) and is
tested here without a GUI. It reports progress per batch through
``state.set_progress_value``, each finished epoch through
``state.set_partial_result(EpochRecord)`` (the widget's live plot), and stops when
``state.is_interruption_requested()`` (the task is discarded) or when ``stop`` is set
(the widget's Cancel button: training stops after the current batch and the best
model so far is returned, marked ``cancelled``).
"""
from __future__ import annotations

import copy
import math
import threading
from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np
from Orange.data import Table

from .core.embed import resolve_device
from .core.train import EpochRecord
from .learner import ImageClassifierLearner, ImageClassifierModel

__all__ = ["TrainingOutcome", "check_data", "run_training", "summary"]


class State(Protocol):
    """What run_training needs of Orange's TaskState (a Mock works in tests)."""

    def set_progress_value(self, value: float) -> None: ...
    def set_partial_result(self, value: object) -> None: ...
    def is_interruption_requested(self) -> bool: ...


@dataclass(frozen=True)
class TrainingOutcome:
    """A trained model and what the widget's summary says about the run."""

    model: ImageClassifierModel
    rows: int  # rows of the input table
    unlabelled: int  # rows without a class, not used for training
    skipped: int  # labelled rows whose image could not be read
    device: str  # where the network trained ("cpu", "cuda")

    @property
    def cancelled(self) -> bool:
        return bool(self.model.cancelled)

    @property
    def best(self) -> "EpochRecord | None":
        return next((r for r in self.model.history if r.epoch == self.model.best_epoch), None)

    @property
    def epochs(self) -> int:
        return len(self.model.history)


def check_data(data: Table, learner: "ImageClassifierLearner | None" = None) -> Optional[str]:
    """Why this table cannot train an image classifier, or None when it can."""
    reason = (learner or ImageClassifierLearner()).incompatibility_reason(data.domain)
    if reason:
        return reason
    y = data.Y.ravel() if data.Y.ndim > 1 else data.Y
    known = y[~np.isnan(y.astype(float))]
    if len(np.unique(known)) < 2:
        return ("Training needs images of at least two classes; this data has "
                f"{len(np.unique(known))} (the class is '{data.domain.class_var.name}').")
    return None


class _PhasedProgress:
    """Turns train_classifier's (done, total) into a percentage that only rises.

    The engine counts the images it loads (or embeds) first, with the total equal to
    their number, and adds the epochs' batches to the total only after the split; its
    raw ratio would reach 100% after loading and then fall back (and Orange's TaskState
    ignores values that fall). Loading gets the first ``load_share`` percent.
    """

    def __init__(self, state: State, n_images: int, load_share: float):
        self.state, self.n_images, self.load_share = state, n_images, load_share

    def __call__(self, done: int, total: int) -> None:
        if total <= self.n_images:
            value = self.load_share * done / max(total, 1)
        else:
            value = self.load_share + (100 - self.load_share) * max(
                done - self.n_images, 0) / (total - self.n_images)
        self.state.set_progress_value(value)


def run_training(data: Table, learner: ImageClassifierLearner, state: State,
                 stop: "threading.Event | None" = None) -> TrainingOutcome:
    """Train a copy of ``learner`` on ``data`` (an Import Images or Image Embedder table).

    Raises ValueError when the table cannot be used, and core.embed.Cancelled when
    training is stopped before the first epoch has finished (there is no model yet).
    """
    reason = check_data(data, learner)
    if reason:
        raise ValueError(reason)
    learner = copy.deepcopy(learner)  # never put callbacks on the widget's output

    def should_stop() -> bool:
        return state.is_interruption_requested() or (stop is not None and stop.is_set())

    y = data.Y.ravel() if data.Y.ndim > 1 else data.Y
    labelled = int(np.sum(~np.isnan(y.astype(float))))
    progress = _PhasedProgress(state, labelled, 50 if learner.mode == "last-layer" else 10)
    learner.should_stop = should_stop
    learner.progress_callback = progress
    learner.epoch_callback = state.set_partial_result
    device = resolve_device(learner.config().device)
    model = learner(data)
    model.progress_callback = model.should_stop = None
    skipped = getattr(model, "skipped", None)
    n_skipped = len(skipped) if skipped is not None else labelled - int(sum(model.class_counts))
    return TrainingOutcome(model, len(data), len(data) - labelled, n_skipped, device)


def _percent(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def summary(outcome: TrainingOutcome) -> str:
    """One paragraph for the widget: best epoch, its validation accuracy, time, skips."""
    model, best = outcome.model, outcome.best
    parts = []
    if best is not None:
        parts.append(f"Best epoch {best.epoch} of {outcome.epochs}: validation accuracy "
                     f"{_percent(best.val_accuracy)}, training accuracy "
                     f"{_percent(best.train_accuracy)}.")
    how = "Cancelled" if outcome.cancelled else (
        "Stopped early" if model.stopped_early else "Finished")
    used = int(sum(model.class_counts))
    parts.append(f"{how} after {model.training_seconds:.1f} s on {outcome.device.upper()}; "
                 f"{used:,} images at {model.image_size} px.")
    if outcome.skipped:
        parts.append(f"{outcome.skipped:,} image{'s' * (outcome.skipped != 1)} could not be "
                     f"read and {'were' if outcome.skipped != 1 else 'was'} left out.")
    if outcome.unlabelled:
        parts.append(f"{outcome.unlabelled:,} row{'s' * (outcome.unlabelled != 1)} without "
                     f"a class {'were' if outcome.unlabelled != 1 else 'was'} not used.")
    return " ".join(parts)

