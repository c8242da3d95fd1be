"""The quick model of the labelling loop and an honest estimate of its accuracy.

A logistic regression on standardised embeddings: it trains in well under a second on
thousands of rows, and its probabilities are good enough to rank images by how sure it
is. The standardisation is fitted on every row with a finite embedding (labelled or
not; it uses no labels), which steadies it when only a few labels exist.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Hashable, Optional, Sequence

import numpy as np
from scipy.special import expit, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from .inputs import LabellingError, Prepared, as_matrix, single_threaded, prepare

__all__ = ["QuickModel", "fit_quick_model", "fit_prepared", "AccuracyEstimate",
           "estimate_accuracy", "OutOfFold", "out_of_fold_proba", "MAX_FOLDS",
           "MIN_LABELS", "wilson"]

#: Inverse regularisation of the logistic regression, chosen for labelling at random on
#: the digits benchmark: accuracy rose from C=0.02 to C=10 and then stayed within a
#: point (benchmarks/README.md, "Labelling as you go").
C = 10.0
MAX_FOLDS = 5


class QuickModel:
    """A fitted quick model: `classes` (the labels, sorted), `predict_proba(X)` (one
    column per class; NaN rows for rows of X that are not finite) and `predict(X)`
    (a list of labels; None for such rows)."""

    def __init__(self, classes: list, mean: np.ndarray, scale: np.ndarray,
                 regression: Optional[LogisticRegression]):
        self.classes = list(classes)
        self.mean, self.scale, self.regression = mean, scale, regression

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardised embeddings (what the regression sees)."""
        return (X - self.mean) / self.scale

    def decision(self, X: np.ndarray) -> np.ndarray:
        """The regression's scores on raw rows, with the standardisation folded into
        its weights (no standardised copy of a 20,000-row matrix is made)."""
        weights = self.regression.coef_ / self.scale
        offset = self.regression.intercept_ - weights @ self.mean
        return X @ weights.T.astype(X.dtype) + offset

    def predict_proba(self, X: object) -> np.ndarray:
        """Probabilities, n x len(classes); rows of non-finite embeddings are NaN."""
        X = np.asarray(X)
        if not np.issubdtype(X.dtype, np.floating):
            X = as_matrix(X)
        if X.ndim != 2:
            raise LabellingError(f"embeddings must be a 2-D array, not {X.ndim}-D")
        if X.shape[1] != len(self.mean):
            raise LabellingError(f"the model was fitted on {len(self.mean)}-d embeddings, "
                                 f"these have {X.shape[1]}: embed with the same network")
        valid = np.isfinite(X).all(axis=1)
        proba = np.full((len(X), len(self.classes)), np.nan)
        if self.regression is None:      # one class: it is always that one
            proba[valid] = 1.0
        elif valid.all():
            proba[:] = probabilities(self.decision(X))
        elif valid.any():
            proba[valid] = probabilities(self.decision(X[valid]))
        return proba

    def predict(self, X: object) -> list:
        """The most probable label of each row (None for non-finite rows)."""
        proba = self.predict_proba(X)
        valid = np.isfinite(proba).all(axis=1)
        best = np.argmax(np.where(valid[:, None], proba, 0), axis=1)
        return [self.classes[i] if ok else None for i, ok in zip(best, valid)]


def probabilities(scores: np.ndarray) -> np.ndarray:
    """Logistic regression's probabilities from its scores (one column: two classes)."""
    scores = scores.astype(np.float64)
    if scores.shape[1] == 1:
        positive = expit(scores[:, 0])
        return np.column_stack([1 - positive, positive])
    return softmax(scores, axis=1)


def scaling(prepared: Prepared) -> tuple:
    """Mean and scale of the finite rows (a constant column gets scale 1)."""
    mean, std = prepared.moments
    return mean, np.where(std > 1e-12, std, 1.0)


def fit_prepared(prepared: Prepared, rows: np.ndarray, scale: Optional[tuple] = None,
                 seed: int = 0) -> QuickModel:
    """A QuickModel on the given (usable, labelled) rows of prepared inputs; its
    classes are those present in these rows."""
    mean, std = scale if scale is not None else scaling(prepared)
    codes = prepared.y[rows]
    present = np.unique(codes)
    classes = [prepared.classes[i] for i in present]
    if len(present) < 2:
        return QuickModel(classes, mean, std, None)
    regression = LogisticRegression(C=C, max_iter=300, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
        standardised = (prepared.X[rows].astype(np.float64) - mean) / std
        regression.fit(standardised, np.searchsorted(present, codes))
    return QuickModel(classes, mean, std, regression)


@single_threaded
def fit_quick_model(embeddings: object, labels: Sequence[Hashable | None],
                    seed: int = 0) -> QuickModel:
    """Fit the quick model on the labelled rows with finite embeddings.

    With one class the model always answers that class; with no usable label at all
    there is nothing to fit and LabellingError says so."""
    prepared = prepare(embeddings, labels)
    rows = np.flatnonzero(prepared.usable)
    if not len(rows):
        raise LabellingError("no labelled image with a usable embedding yet: "
                             "label some images first")
    return fit_prepared(prepared, rows, seed=seed)


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold probabilities of the usable labelled rows.

    `rows` are row indices, `proba` their probabilities over all classes (NaN rows for
    rows that were never held out: those of a class with one label), `fold` the fold
    each row was tested in (-1 if never), `n_folds` 0 when nothing could be held out,
    with `reason` saying why."""
    rows: np.ndarray
    proba: np.ndarray
    fold: np.ndarray
    n_folds: int
    reason: str = ""


def out_of_fold_proba(prepared: Prepared, seed: int = 0, max_folds: int = MAX_FOLDS,
                      min_testable: int = 1) -> OutOfFold:
    """Stratified k-fold predictions; k is limited by the smallest class with two or
    more labels. Rows of a class with a single label are always trained on, never
    tested (a model cannot predict a class it has not seen)."""
    rows = np.flatnonzero(prepared.usable)
    n_classes = len(prepared.classes)
    proba = np.full((len(rows), n_classes), np.nan)
    fold = np.full(len(rows), -1)
    counts = prepared.class_counts()
    if (counts > 0).sum() < 2:
        return OutOfFold(rows, proba, fold, 0, "needs labels of at least two classes")
    testable = counts[prepared.y[rows]] >= 2
    if (counts >= 2).sum() < min_testable:
        return OutOfFold(rows, proba, fold, 0,
                         "needs two labels each of at least two classes")
    n_folds = int(min(max_folds, counts[counts >= 2].min()))
    scale = scaling(prepared)
    splitter = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    always = np.flatnonzero(~testable)
    tested = np.flatnonzero(testable)
    for k, (train, test) in enumerate(splitter.split(tested, prepared.y[rows[tested]])):
        train_rows = np.concatenate([tested[train], always])
        model = fit_prepared(prepared, rows[train_rows], scale, seed)
        columns = [prepared.classes.index(c) for c in model.classes]
        part = np.zeros((len(test), n_classes))
        part[:, columns] = model.predict_proba(prepared.X[rows[tested[test]]])
        proba[tested[test]] = part
        fold[tested[test]] = k
    return OutOfFold(rows, proba, fold, n_folds)


@dataclass(frozen=True)
class AccuracyEstimate:
    """The quick model's accuracy estimated from the labels so far.

    `mean` is the expected accuracy on the unlabelled rows (see `calibrated`): how
    often the model is right at a given confidence, learnt from its k-fold held-out
    predictions of the labels, averaged over its confidences on the unlabelled rows.
    `cross_validated` is the plain k-fold share of held-out labels predicted right, and
    `std` its spread over the folds. Only labels of classes with two or more labels are
    held out (`n_tested` of them); a class with one label is always learnt from, never
    tested. `low`-`high` is the 95 % Wilson interval of `mean` over `n_tested` labels,
    wide at few labels. All are None below MIN_LABELS tested labels or without two
    labels in each of two classes, and then `reason` says why."""
    mean: Optional[float]
    std: Optional[float]
    n_labels: int
    n_classes: int
    n_folds: int = 0
    n_tested: int = 0
    reason: str = ""
    low: Optional[float] = None
    high: Optional[float] = None
    cross_validated: Optional[float] = None

    def __str__(self) -> str:
        return self.text()

    def text(self, short: bool = False) -> str:
        """'estimated accuracy 0.91 (95 % 0.80-0.96; 48 labels, 5 classes)', ``short``
        'estimated accuracy 0.91 (0.80-0.96)' (a status line that gives the counts
        itself); or why there is no estimate."""
        if self.mean is None:
            return f"accuracy cannot be estimated yet: {self.reason}"
        if short:
            return f"estimated accuracy {self.mean:.2f} ({self.low:.2f}-{self.high:.2f})"
        return (f"estimated accuracy {self.mean:.2f} (95 % {self.low:.2f}-{self.high:.2f}; "
                f"{self.n_labels} labels, {self.n_classes} classes)")


#: Fewer usable labels than this: too few to estimate the accuracy at all.
MIN_LABELS = 10
#: Folds of the estimate (at most; one label per fold at fewer labels).
ESTIMATE_FOLDS = 10


def wilson(correct: int, n: int, z: float = 1.96) -> tuple:
    """The Wilson score interval of a proportion (correct of n)."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def spread_folds(codes: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """A fold per row, each class dealt round the folds in a random order (stratified,
    and a class with one label still lands in some fold)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(codes))
    order = order[np.argsort(codes[order], kind="stable")]
    fold = np.empty(len(codes), int)
    fold[order] = (np.arange(len(codes)) + rng.integers(n_folds)) % n_folds
    return fold


@single_threaded
def estimate_accuracy(embeddings: object, labels: Sequence[Hashable | None],
                      seed: int = 0) -> AccuracyEstimate:
    """The quick model's accuracy on the unlabelled rows, estimated from the labels;
    see AccuracyEstimate."""
    prepared = prepare(embeddings, labels)
    rows = np.flatnonzero(prepared.usable)
    counts = prepared.class_counts()
    n_labels, n_classes = len(rows), int((counts > 0).sum())
    if n_classes < 2:
        return AccuracyEstimate(None, None, n_labels, n_classes,
                                reason="needs labels of at least two classes")
    if n_labels < MIN_LABELS or (counts >= 2).sum() < 2:
        return AccuracyEstimate(None, None, n_labels, n_classes, reason=(
            f"too few labels ({n_labels}; needs {MIN_LABELS}, "
            "with two in each of two classes)"))
    codes = prepared.y[rows]
    tested = counts[codes] >= 2  # a class with one label is always learnt from
    if tested.sum() < MIN_LABELS:
        return AccuracyEstimate(None, None, n_labels, n_classes, reason=(
            f"too few labels ({int(tested.sum())} in classes with two or "
            f"more; needs {MIN_LABELS})"))
    n_folds = min(ESTIMATE_FOLDS, int(tested.sum()))
    fold = np.full(n_labels, -1)
    fold[tested] = spread_folds(codes[tested], n_folds, seed)
    correct, confidence = held_out(prepared, rows, fold, seed)
    per_fold = [correct[fold == k].mean() for k in range(n_folds)]
    mean = calibrated(prepared, rows, correct[tested], confidence[tested], seed)
    n = int(tested.sum())
    low, high = wilson(mean * n, n)
    return AccuracyEstimate(mean, float(np.std(per_fold)), n_labels, n_classes, n_folds, n,
                            low=low, high=high,
                            cross_validated=float(correct[tested].mean()))


def held_out(prepared: Prepared, rows: np.ndarray, fold: np.ndarray, seed: int) -> tuple:
    """(right or wrong, confidence) of each label predicted by a model that did not see
    its fold (rows of fold -1 are never held out: False, NaN)."""
    scale = scaling(prepared)
    correct, confidence = np.zeros(len(rows), bool), np.full(len(rows), np.nan)
    for k in range(fold.max() + 1):
        test = fold == k
        model = fit_prepared(prepared, rows[~test], scale, seed)
        proba = model.predict_proba(prepared.X[rows[test]])
        predicted = np.array(model.classes, dtype=object)[np.argmax(proba, axis=1)]
        truth = np.array(prepared.classes, dtype=object)[prepared.y[rows[test]]]
        correct[test] = predicted == truth
        confidence[test] = proba.max(axis=1)
    return correct, confidence


def calibrated(prepared: Prepared, rows: np.ndarray, correct: np.ndarray,
               confidence: np.ndarray, seed: int) -> float:
    """The expected accuracy on the unlabelled rows: the chance of being right given the
    model's confidence, learnt from the held-out labels (a logistic curve on the
    confidence's logit), averaged over the confidences of the model on the unlabelled
    rows. Labels picked by suggest_next are the hard cases, not a random sample; this
    weighs them by how often such cases occur among the rows not labelled."""
    rest = np.flatnonzero(prepared.candidates)
    if not len(rest) or correct.all() or not correct.any():
        return float((correct.sum() + 1) / (len(correct) + 2))
    model = fit_prepared(prepared, rows, seed=seed)
    sure = model.predict_proba(prepared.X[rest]).max(axis=1)
    curve = LogisticRegression(C=1.0)
    curve.fit(logit(confidence)[:, None], correct)
    return float(curve.predict_proba(logit(sure)[:, None])[:, 1].mean())


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))
