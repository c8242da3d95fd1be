"""The labelling loop's quick model as an Orange Learner/Model pair; no Qt.

``QuickImageLearner`` fits core.labelling's quick model (logistic regression on
standardised embeddings) on the embedding columns (``n0``, ``n1``, ... as Image
Embedder adds them) of any table with a categorical class, so it goes into Test &
Score beside Orange's own learners. ``QuickImageModel`` predicts for any table with
the same embedding columns (Predictions, Test & Score's "Test on test data"); rows
without a usable embedding get the training class frequencies, never NaN. Both pickle
(Save Model) and survive ``copy.deepcopy``.
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

import numpy as np
from Orange.base import Learner, Model
from Orange.data import ContinuousVariable, Domain, Table

from .core.labelling import LabellingError, QuickModel, fit_quick_model

__all__ = ["QuickImageLearner", "QuickImageModel", "embedding_columns", "EMBEDDING_NAME"]

#: n0, n1, ..., and "n0 (1)", ... when an embedded table was embedded again
EMBEDDING_NAME = re.compile(r"^n(\d+)(?: \((\d+)\))?$")


def embedding_columns(domain: Domain) -> list:
    """The embedding features of ``domain``: continuous attributes named n0, n1, ...
    (of the latest embedding when there are several sets); [] when there are none."""
    groups: dict = {}
    for var in domain.attributes:
        match = EMBEDDING_NAME.match(var.name)
        if isinstance(var, ContinuousVariable) and match:
            groups.setdefault(int(match.group(2) or 0), []).append(var)
    return groups[max(groups)] if groups else []


def _class_frequencies(codes: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=n_classes).astype(float)
    return counts / counts.sum() if counts.sum() else np.full(n_classes, 1 / n_classes)


class QuickImageModel(Model):
    """core.labelling's QuickModel over a table's embedding columns.

    ``domain``'s attributes are the embedding columns it was fitted on, its class
    variable gives the classes (a class with no labels gets probability 0)."""

    def __init__(self, domain: Domain, quick: QuickModel, prior: Sequence[float]):
        super().__init__(domain)
        self.quick = quick
        self.prior = np.asarray(prior, dtype=float)
        self.name = "Quick model"

    def predict_storage(self, data: Table) -> np.ndarray:
        values = list(self.domain.class_var.values)
        probs = np.tile(self.prior, (len(data), 1))
        if len(data):
            quick = self.quick.predict_proba(np.asarray(data.X, dtype=float))
            valid = np.isfinite(quick).all(axis=1)
            columns = [values.index(str(c)) for c in self.quick.classes]
            known = np.zeros((int(valid.sum()), len(values)))
            known[:, columns] = quick[valid]
            probs[valid] = known
        return probs

    def __str__(self) -> str:
        return (f"Quick model: logistic regression on {len(self.domain.attributes)} "
                f"embedding columns, {len(self.quick.classes)} classes")


class QuickImageLearner(Learner):
    """Fits the quick model on the embedding columns and the categorical class."""

    name = "Quick model"
    supports_weights = False

    def __init__(self, seed: int = 0, preprocessors=None):
        super().__init__(preprocessors=preprocessors)
        self.seed = seed

    def incompatibility_reason(self, domain: Domain) -> Optional[str]:
        if not embedding_columns(domain):
            return ("The quick model needs embeddings (columns n0, n1, ...): connect "
                    "Image Embedder, or Label Images, before it.")
        if domain.class_var is None or not domain.class_var.is_discrete:
            return "The quick model needs a categorical target (the images' classes)."
        return None

    def fit_storage(self, data: Table) -> QuickImageModel:
        reason = self.incompatibility_reason(data.domain)
        if reason:
            raise ValueError(reason)
        features = embedding_columns(data.domain)
        class_var = data.domain.class_var
        X = np.column_stack([data.get_column(var) for var in features]).astype(float)
        y = data.get_column(class_var).astype(float)
        labels = [None if np.isnan(v) else class_var.values[int(v)] for v in y]
        try:
            quick = fit_quick_model(X, labels, seed=self.seed)
        except LabellingError as error:
            raise ValueError(f"The quick model cannot be fitted: {error}") from None
        known = y[~np.isnan(y)].astype(int)
        return QuickImageModel(Domain(features, class_var), quick,
                               _class_frequencies(known, len(class_var.values)))
