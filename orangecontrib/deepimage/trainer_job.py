"""The Trainer widget's work, without Qt: train an ImageClassifierLearner on a table.

``run_training(data, learner, state)`` runs in the widget's worker thread
(Orange's ConcurrentWidgetMixin, as in Orange/widgets/data/owoutliers.py) and is
tested here without a GUI. It reports progress per batch through
``state.set_progress_value`` (the engine's done / total: its total is fixed from the
start), each finished epoch through
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

from .core.devices import resolve_device
from .core.train import EpochRecord, preset
from .learner import (ImageClassifierLearner, ImageClassifierModel, count_of, labelled_rows,
                      rate_field)

__all__ = ["TrainingOutcome", "check_data", "run_training", "summary", "baseline_sentence",
           "MODE_LABELS", "MODE_TIPS", "preset_values"]


# the Trainer widget's words for the training modes (core.presets.MODES), and what each does
MODE_LABELS = {"last-layer": "Last layer only", "fine-tune": "Fine-tune",
               "scratch": "From scratch"}
MODE_TIPS = {
    "last-layer": "The network stays as it is; only its last layer learns, on the cached "
                  "embeddings. Seconds on a CPU.",
    "fine-tune": "The last layer first, then the whole network, the backbone at a tenth "
                 "of the last layer's rate. A minute or two on a CPU for a thousand small "
                 "images; a GPU helps.",
    "scratch": "Random start, every layer learns. Needs many images and a GPU.",
}


def preset_values(network: str, mode: str) -> "tuple[int, int, float]":
    """(epochs, batch size, learning rate) the preset gives; the rate is the one the
    mode trains at (learner.rate_field: the last layer's in "last layer only")."""
    config = preset(network, mode)
    return config.epochs, config.batch_size, getattr(config, rate_field(mode))


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
    skipped: int  # labelled rows whose image could not be read (``model.skipped``)
    device: str  # where the network trained ("cpu", "cuda")

    @property
    def cancelled(self) -> bool:
        return bool(self.model.cancelled)

    @property
    def best(self) -> "EpochRecord | None":
        return self.model.best

    @property
    def epochs(self) -> int:
        return len(self.model.history)


def check_data(data: Table, learner: "ImageClassifierLearner | None" = None) -> Optional[str]:
    """Why this table cannot train an image classifier, or None when it can."""
    reason = (learner or ImageClassifierLearner()).incompatibility_reason(data.domain)
    if reason:
        return reason
    classes = len(np.unique(labelled_rows(data)[1]))
    if classes < 2:
        return ("Training needs images of at least two classes; this data has "
                f"{classes} (the class is '{data.domain.class_var.name}').")
    return None


def _progress(state: State):
    """train_classifier's (done, total) as a percentage; its total never changes during
    a run and ``done`` only rises, so neither does the percentage."""
    return lambda done, total: state.set_progress_value(100 * done / max(total, 1))


def run_training(data: Table, learner: ImageClassifierLearner, state: State,
                 stop: "threading.Event | None" = None) -> TrainingOutcome:
    """Train a copy of ``learner`` on ``data`` (an Import Images or Image Embedder table).

    Raises ValueError when the table cannot be used, and core.cancel.Cancelled when
    training is stopped before the first epoch has finished (there is no model yet).
    """
    reason = check_data(data, learner)
    if reason:
        raise ValueError(reason)
    learner = copy.deepcopy(learner)  # never put callbacks on the widget's output

    def should_stop() -> bool:
        return state.is_interruption_requested() or (stop is not None and stop.is_set())

    labelled = len(labelled_rows(data)[0])
    learner.should_stop = should_stop
    learner.progress_callback = _progress(state)
    learner.epoch_callback = state.set_partial_result
    device = resolve_device(learner.config().device)
    model = learner(data)
    model.progress_callback = model.should_stop = None
    return TrainingOutcome(model, len(data), len(data) - labelled, len(model.skipped), device)


def _percent(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def baseline_sentence(model: ImageClassifierModel) -> str:
    """What logistic regression on the pretrained network's embeddings scored on the same
    validation images, against the trained model's validation accuracy ("" if unknown)."""
    baseline, best = getattr(model, "baseline_accuracy", math.nan), model.best
    if baseline is None or math.isnan(baseline) or best is None \
            or math.isnan(best.val_accuracy):
        return ""
    gain = 100 * (best.val_accuracy - baseline)
    verdict = ("fine-tuning helped" if gain > 0 else "fine-tuning did not help" if gain < 0
               else "no difference")
    return (f"Logistic regression on the pretrained network's embeddings (at "
            f"{model.image_size} px): {_percent(baseline)} on the same validation images "
            f"({gain:+.1f} points: {verdict}).")


def summary(outcome: TrainingOutcome) -> str:
    """One paragraph for the widget: best epoch, its validation accuracy, time, skips."""
    model, best = outcome.model, outcome.best
    parts = []
    if best is not None:
        parts.append(f"Best epoch {best.epoch} of {outcome.epochs}: validation accuracy "
                     f"{_percent(best.val_accuracy)}, training accuracy "
                     f"{_percent(best.train_accuracy)}.")
    parts.append(baseline_sentence(model))
    if getattr(model, "budget_note", ""):
        parts.append(model.budget_note)
    how = "Cancelled" if outcome.cancelled else (
        "Stopped early" if model.stopped_early else "Finished")
    used = int(sum(model.class_counts))
    parts.append(f"{how} after {model.training_seconds:.1f} s on {outcome.device.upper()}; "
                 f"{count_of(used, 'image')} at {model.image_size} px.")
    if outcome.skipped:
        parts.append(f"{count_of(outcome.skipped, 'image')} could not be read and "
                     f"{'were' if outcome.skipped != 1 else 'was'} left out.")
    if outcome.unlabelled:
        parts.append(f"{count_of(outcome.unlabelled, 'row')} without a class "
                     f"{'were' if outcome.unlabelled != 1 else 'was'} not used.")
    return " ".join(p for p in parts if p)

