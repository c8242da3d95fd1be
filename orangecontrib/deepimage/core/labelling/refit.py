"""One turn of the labelling loop, everything Label Images shows after a change of the
labels: the quick model and its probabilities on every row, the accuracy estimate,
the images to label next and the labels that look wrong. numpy and scikit-learn only,
so it runs in a worker process as well as in a thread (see worker.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from .inputs import LabellingError, summarize_labels
from .issues import issues_and_scores
from .quickmodel import AccuracyEstimate, QuickModel, estimate_accuracy, fit_quick_model
from .suggest import suggest_next

__all__ = ["RefitResult", "refit"]


@dataclass(frozen=True)
class RefitResult:
    """What the loop knows after a change of the labels (picklable).

    ``probabilities`` are n x len(classes) in the caller's class order (NaN rows: no
    usable embedding; None: no model yet); ``suggestions`` rows to label next, most
    useful first; ``issues`` labelled rows the data contradicts, most suspicious first;
    ``scores`` per row, the out-of-fold probability of its label (NaN: unlabelled,
    unchecked); ``quick`` the fitted model; ``counts`` the labels per class in that
    order."""

    labels: tuple
    classes: tuple
    probabilities: Optional[np.ndarray] = None
    suggestions: list = field(default_factory=list)
    issues: list = field(default_factory=list)
    accuracy: Optional[AccuracyEstimate] = None
    quick: Optional[QuickModel] = None
    counts: Optional[np.ndarray] = None
    notes: tuple = ()
    scores: Optional[np.ndarray] = None

    @property
    def predicted(self) -> Optional[np.ndarray]:
        """Index of each row's predicted class (-1 where there is no prediction)."""
        if self.probabilities is None:
            return None
        valid = np.isfinite(self.probabilities).all(axis=1)
        return np.where(valid, np.argmax(np.nan_to_num(self.probabilities, nan=-1), 1), -1)

    @property
    def confidence(self) -> Optional[np.ndarray]:
        """The predicted class's probability (NaN where there is no prediction)."""
        if self.probabilities is None:
            return None
        valid = np.isfinite(self.probabilities).all(axis=1)
        best = np.max(np.nan_to_num(self.probabilities, nan=0), axis=1)
        return np.where(valid, best, np.nan)


def refit(embeddings: np.ndarray, labels: Sequence[Optional[str]], classes: Sequence[str],
          n_suggest: int, seed: int = 0, with_scores: bool = False,
          check: Optional[Callable[[], None]] = None) -> RefitResult:
    """Fit, predict, estimate, suggest and check for ``labels`` (None: unlabelled).
    ``check`` is called between the steps (it raises to cancel); the scores of the
    labels (from the issues' cross-validation) only ``with_scores``."""
    check = check or (lambda: None)
    labels, classes = tuple(labels), tuple(classes)
    summary = summarize_labels(embeddings, labels)
    suggestions = suggest_next(embeddings, labels, n_suggest, seed=seed)
    check()
    if summary.n_labelled == 0 or summary.n_labelled == len(summary.invalid_rows):
        return RefitResult(labels, classes, suggestions=suggestions, notes=summary.notes)
    try:
        quick = fit_quick_model(embeddings, labels, seed=seed)
    except LabellingError:  # only labels on rows with no usable embedding
        return RefitResult(labels, classes, suggestions=suggestions, notes=summary.notes)
    check()
    proba = quick.predict_proba(embeddings)
    probabilities = np.zeros((len(labels), len(classes)))
    probabilities[:, [classes.index(c) for c in quick.classes]] = proba
    probabilities[~np.isfinite(proba).all(axis=1)] = np.nan
    accuracy = estimate_accuracy(embeddings, labels, seed=seed)
    check()
    issues, scores = issues_and_scores(embeddings, labels, seed, with_scores) \
        if summary.n_classes > 1 else ([], None)
    counts = np.array([summary.class_counts.get(c, 0) for c in classes], dtype=float)
    return RefitResult(labels, classes, probabilities, suggestions, list(issues), accuracy,
                       quick, counts, summary.notes, scores)
