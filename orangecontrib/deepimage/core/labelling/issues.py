"""Labels the data contradicts (the idea behind cleanlab's find_label_issues).

Each labelled row gets out-of-fold probabilities from the quick model (a model that
never saw the row). As in confident learning, a class's threshold is the mean
probability the model gives that class on the rows labelled with it. A row is an issue
when the model gives another class at least half the probability and the given label
less than that label's threshold. (cleanlab asks instead that the other class reach
its own threshold: on a large, confident class that misses rows of it given a wrong
label.) The half keeps a weak model, early in labelling, from doubting every label it
gets wrong: with 100 correct labels of the digits it halved the rows flagged, and kept
the flipped ones. Issues are ranked by the probability of the given label, lowest
first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

from .inputs import single_threaded, prepare
from .quickmodel import out_of_fold_proba

__all__ = ["label_issues", "label_issue_scores", "LabelIssue", "describe_label_issues",
           "issues_and_scores"]


@single_threaded
def label_issue_scores(embeddings: object, labels: Sequence[Hashable | None],
                       seed: int = 0) -> np.ndarray:
    """Per row, how well the data supports its label: the out-of-fold probability of
    the given label (0 = contradicted, 1 = supported); NaN for unlabelled rows and
    rows that cannot be checked (NaN embedding, a class with one label)."""
    prepared = prepare(embeddings, labels)
    return _scores(prepared, out_of_fold_proba(prepared, seed))


def _scores(prepared, oof) -> np.ndarray:
    scores = np.full(len(prepared.y), np.nan)
    tested = oof.fold >= 0
    rows = oof.rows[tested]
    scores[rows] = oof.proba[tested, prepared.y[rows]]
    return scores


@dataclass(frozen=True)
class LabelIssue:
    """A label the data contradicts: its row, the label given, the class a model that
    never saw the row prefers, and the probabilities that model gives each."""
    row: int
    label: Hashable
    likely: Hashable
    label_probability: float
    likely_probability: float


@single_threaded
def describe_label_issues(embeddings: object, labels: Sequence[Hashable | None],
                          seed: int = 0) -> list:
    """`label_issues` with the reasons: a LabelIssue per suspicious row, most
    suspicious first."""
    prepared = prepare(embeddings, labels)
    return _issues(prepared, out_of_fold_proba(prepared, seed))


def _issues(prepared, oof) -> list:
    tested = oof.fold >= 0
    if not tested.any():
        return []
    proba, rows = oof.proba[tested], oof.rows[tested]
    given = prepared.y[rows]
    thresholds = np.array([proba[given == c, c].mean() if (given == c).any() else np.inf
                           for c in range(proba.shape[1])])
    self_confidence = proba[np.arange(len(rows)), given]
    likely = np.argmax(proba, axis=1)
    flagged = np.flatnonzero((likely != given) & (self_confidence < thresholds[given])
                             & (proba[np.arange(len(rows)), likely] >= 0.5))
    flagged = flagged[np.argsort(self_confidence[flagged], kind="stable")]
    classes = prepared.classes
    return [LabelIssue(int(rows[i]), classes[given[i]], classes[likely[i]],
                       float(self_confidence[i]), float(proba[i, likely[i]]))
            for i in flagged]


def label_issues(embeddings: object, labels: Sequence[Hashable | None],
                 seed: int = 0) -> list:
    """Indices of labelled rows whose label the data contradicts, most suspicious
    first; empty when nothing can be checked yet (fewer than two classes with two or
    more labels each)."""
    return [issue.row for issue in describe_label_issues(embeddings, labels, seed)]


@single_threaded
def issues_and_scores(embeddings: object, labels: Sequence[Hashable | None], seed: int = 0,
                      with_scores: bool = False) -> "tuple[list, np.ndarray | None]":
    """``label_issues`` and, ``with_scores`` and when there are issues,
    ``label_issue_scores``, from one cross-validation (the refit's)."""
    prepared = prepare(embeddings, labels)
    oof = out_of_fold_proba(prepared, seed)
    issues = [issue.row for issue in _issues(prepared, oof)]
    return issues, (_scores(prepared, oof) if issues and with_scores else None)
