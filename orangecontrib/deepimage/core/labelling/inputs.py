"""Checking and preparing the inputs of the labelling loop.

Every public function of the loop takes the same two things: a matrix of embeddings
(one row per image) and a list of labels (None, or a float NaN, for an unlabelled
row). `prepare` turns them into arrays the strategies use and notes what it had to
set aside (rows with NaN embeddings, classes with one image), so callers can say so.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Hashable, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

__all__ = ["LabellingError", "Prepared", "LabelSummary", "prepare", "summarize_labels",
           "is_unlabelled", "single_threaded"]


def single_threaded(function: Callable) -> Callable:
    """Run `function` with BLAS and OpenMP (k-means) on one thread. The matrices of
    the loop are small, and on a busy computer the threads wait for each other: on the
    benchmark's shared 2-core machine a randomized SVD of 1,797 x 512 took 2-4 s with
    two threads and 0.3 s with one, and "diverse" on 20,000 rows 9 s against 2.4 s.
    (threadpoolctl comes with scikit-learn.)"""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1):
            return function(*args, **kwargs)
    return wrapper


class LabellingError(ValueError):
    """A call that cannot be answered: shapes that do not match, an unknown strategy,
    a negative count. Data that is merely awkward (one class, NaN rows) never raises."""


def is_unlabelled(label: object) -> bool:
    """True for None, a float NaN and an empty string: what an unlabelled row holds."""
    if label is None:
        return True
    if isinstance(label, float) and math.isnan(label):
        return True
    return isinstance(label, str) and label == ""


@dataclass(frozen=True)
class Prepared:
    """The inputs as arrays.

    `X` is float32 or float64 with non-finite rows zeroed; `valid` marks the finite rows (only
    those are ever suggested, fitted or checked); `y` holds class indices into
    `classes` for labelled rows and -1 elsewhere; `labelled` is `y >= 0` (a label on an
    invalid row is kept in `y` but never used to fit)."""
    X: np.ndarray
    valid: np.ndarray
    y: np.ndarray
    classes: list
    notes: tuple = field(default=())

    @functools.cached_property
    def moments(self) -> tuple:
        """Mean and standard deviation of each column over the valid rows, in float64,
        summed in chunks (no copy of a large matrix; invalid rows are zero)."""
        count = max(int(self.valid.sum()), 1)
        total = np.zeros(self.X.shape[1])
        squares = np.zeros(self.X.shape[1])
        for start in range(0, len(self.X), 4096):
            chunk = self.X[start:start + 4096].astype(np.float64)
            total += chunk.sum(axis=0)
            squares += np.einsum("ij,ij->j", chunk, chunk)
        mean = total / count
        return mean, np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))

    @property
    def labelled(self) -> np.ndarray:
        return self.y >= 0

    @property
    def usable(self) -> np.ndarray:
        """Labelled rows with finite embeddings: what a model may learn from."""
        return self.labelled & self.valid

    @property
    def candidates(self) -> np.ndarray:
        """Unlabelled rows with finite embeddings: what may be suggested."""
        return ~self.labelled & self.valid

    def class_counts(self) -> np.ndarray:
        """Usable labels per class, in the order of `classes`."""
        return np.bincount(self.y[self.usable], minlength=len(self.classes))


@dataclass(frozen=True)
class LabelSummary:
    """What a caller shows next to the loop: counts and any note about the data."""
    n_rows: int
    n_labelled: int
    n_classes: int
    class_counts: dict
    invalid_rows: list
    notes: tuple


def as_matrix(embeddings: object) -> np.ndarray:
    """A 2-D float array (float32 and float64 kept, not copied; anything else becomes
    float64), or LabellingError saying what was wrong."""
    try:
        X = np.asarray(embeddings)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise LabellingError(f"embeddings must be numbers: {error}") from None
    if X.ndim == 1 and X.size == 0:
        X = X.reshape(0, 0)
    if X.ndim != 2:
        raise LabellingError(f"embeddings must be a 2-D array (one row per image), "
                             f"not {X.ndim}-D")
    return X


def _sort_key(label: object) -> tuple:
    return (type(label).__name__, str(label))


def prepare(embeddings: object, labels: Sequence[Hashable | None]) -> Prepared:
    """Check that embeddings and labels belong together and turn them into arrays."""
    X = as_matrix(embeddings)
    labels = list(labels) if labels is not None else [None] * len(X)
    if len(labels) != len(X):
        raise LabellingError(f"{len(labels)} labels for {len(X)} rows of embeddings: "
                             "give one label (or None) per row")
    try:
        classes = sorted({label for label in labels if not is_unlabelled(label)},
                         key=_sort_key)
    except TypeError:
        raise LabellingError("labels must be hashable (strings, numbers or None)") from None
    index = {label: i for i, label in enumerate(classes)}
    y = np.array([-1 if is_unlabelled(label) else index[label] for label in labels],
                 dtype=np.int64)
    valid = np.isfinite(X).all(axis=1) if X.shape[1] else np.zeros(len(X), bool)
    if not valid.all():
        X = np.where(valid[:, None], X, 0.0)
    prepared = Prepared(X, valid, y, classes)
    return Prepared(X, valid, y, classes, tuple(_notes(prepared)))


def _notes(prepared: Prepared) -> list:
    notes = []
    n_invalid = int((~prepared.valid).sum())
    if n_invalid:
        lost = int((~prepared.valid & prepared.labelled).sum())
        note = (f"{n_invalid} row{'s' * (n_invalid != 1)} without a usable embedding "
                f"(NaN or infinite) {'is' if n_invalid == 1 else 'are'} never suggested")
        if lost:
            note += f"; {lost} of them labelled, their labels are kept but not learnt from"
        notes.append(note)
    counts = prepared.class_counts()
    single = [str(c) for c, count in zip(prepared.classes, counts) if count == 1]
    if single:
        notes.append(f"class{'es' * (len(single) > 1)} with one image: {', '.join(single)}; "
                     "label at least two of each to check them")
    if len(prepared.classes) == 1:
        notes.append("one class so far: label images of another class to train a model")
    return notes


def summarize_labels(embeddings: object, labels: Sequence[Hashable | None]) -> LabelSummary:
    """Counts and notes for a status line ("48 labelled in 5 classes")."""
    prepared = prepare(embeddings, labels)
    counts = prepared.class_counts()
    return LabelSummary(
        n_rows=len(prepared.y), n_labelled=int(prepared.labelled.sum()),
        n_classes=len(prepared.classes),
        class_counts={c: int(k) for c, k in zip(prepared.classes, counts)},
        invalid_rows=np.flatnonzero(~prepared.valid).tolist(), notes=prepared.notes)
