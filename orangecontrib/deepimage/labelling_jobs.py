"""Label Images' work, without Qt: prepare the input, refresh the model, build the outputs.

``run_prepare`` (on new input) embeds the images when the table has no embedding
columns, with the chosen network (embedder_job.run_embedding), and reads every image's
content hash, the key its label is stored under. ``run_refresh`` (after each change of
the labels) fits the quick model, predicts every row, estimates the accuracy from
the labels so far and asks core.labelling which images to label next and which labels
look wrong (core.labelling.refit), in the worker process of a
core.labelling.worker.RefitWorker when it is given one. Both run in the widget's
worker thread and are tested headless.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields
from typing import Optional, Sequence

import numpy as np
from Orange.data import ContinuousVariable, DiscreteVariable, Domain, Table
from Orange.data.util import get_unique_names

from .core.cancel import Cancelled
from .core.labelling.refit import RefitResult, refit
from .core.labelling.worker import RefitWorker, Superseded
from .data import image_column
from .embedder_job import EmbedderChoice, EmbedderPool, run_embedding
from .labelling_model import QuickImageModel, embedding_columns
from .labelling_session import RowKeys, image_keys

__all__ = ["Prepared", "Refresh", "run_prepare", "run_refresh", "labelled_images",
           "annotated_images", "label_variable", "label_name", "status_text",
           "SUGGESTIONS"]

_TOKENS = itertools.count(1)
#: how many images "Next to label" shows at a time
SUGGESTIONS = 60


@dataclass(frozen=True)
class Prepared:
    """The input made ready for labelling: ``table`` has embedding columns (its rows may
    be fewer than the input's when images could not be embedded: ``skipped``)."""

    table: Table
    keys: RowKeys
    embeddings: np.ndarray  # float, rows x dim; NaN rows have no usable embedding
    network: str = ""  # the network that embedded them here ("" when they came embedded)
    skipped: Optional[Table] = None
    #: names these embeddings for a RefitWorker (sent to its process once per token)
    token: int = field(default_factory=lambda: next(_TOKENS))


def run_prepare(table: Table, choice: EmbedderChoice, pool: EmbedderPool, state
                ) -> Prepared:
    """Embed ``table``'s images if it has no embeddings yet, then read their keys."""
    column = image_column(table)
    if column is None:
        raise ValueError("The data has no image column (a text column marked type=image, "
                         "as Import Images makes).")
    network, skipped = "", None
    if not embedding_columns(table.domain):
        outcome = run_embedding(table, column, choice, pool, state)
        if outcome.embedded is None:
            raise ValueError("None of the images could be read, so there is nothing to "
                             "label.")
        table, skipped, network = outcome.embedded, outcome.skipped, choice.label()
    state.set_status("Reading the images' keys...")
    keys = image_keys(table, image_column(table), state)
    features = embedding_columns(table.domain)
    X = np.column_stack([table.get_column(var) for var in features]).astype(float)
    return Prepared(table, keys, X, network, skipped)


@dataclass(frozen=True)
class Refresh(RefitResult):
    """What the loop knows after a change of the labels: core.labelling.refit's result
    (``probabilities``, ``suggestions``, ``issues``, ``scores``, ``predicted``,
    ``confidence``) with ``model``, the quick model as an Orange model (None: none yet)."""

    model: Optional[QuickImageModel] = None


def _check(state) -> None:
    if state is not None and state.is_interruption_requested():
        raise Cancelled()


def run_refresh(embeddings: np.ndarray, labels: Sequence[Optional[str]],
                classes: Sequence[str], features: Sequence[ContinuousVariable],
                state=None, n_suggest: int = SUGGESTIONS, seed: int = 0,
                class_name: str = "label", with_scores: bool = False,
                worker: Optional[RefitWorker] = None, token: object = None) -> Refresh:
    """Fit, predict, estimate, suggest and check, for ``labels`` (None: unlabelled);
    the model's class is called ``class_name`` (see :func:`label_name`). The scores of
    the labels (one more cross-validation) only ``with_scores``. With a ``worker`` the
    work runs in its process (``token`` names the input whose ``embeddings`` these
    are: they are sent once per token); a newer request there cancels this one."""
    if worker is not None and token is None:
        raise ValueError("run_refresh: a worker needs the token that names the embeddings")
    if worker is None:
        core = refit(embeddings, labels, classes, n_suggest, seed, with_scores,
                     check=lambda: _check(state))
    else:
        cancelled = state.is_interruption_requested if state is not None else bool
        try:
            core = worker.refit(embeddings, token, labels, classes, n_suggest, seed,
                                with_scores, cancelled=cancelled)
        except Superseded:
            raise Cancelled() from None
    model = None
    if core.quick is not None:
        domain = Domain(list(features), label_variable(core.classes, class_name))
        model = QuickImageModel(domain, core.quick, core.counts / core.counts.sum())
    return Refresh(**{f.name: getattr(core, f.name) for f in fields(core)}, model=model)


def status_text(n_labelled: int, n_classes: int, refresh: Optional[Refresh]) -> str:
    """'48 labelled in 5 classes; estimated accuracy 0.91 (0.80-0.96)': the estimate
    and its 95 % interval, or why there is none (core.labelling.AccuracyEstimate)."""
    text = f"{n_labelled:,} labelled in {n_classes} class{'es' if n_classes != 1 else ''}"
    accuracy = refresh.accuracy if refresh is not None else None
    if accuracy is not None:
        text += "; " + accuracy.text(short=True)
    elif n_labelled:
        text += "; too few labels to estimate the accuracy"
    return text


# --- output tables ------------------------------------------------------------------

def label_variable(classes: Sequence[str], name: str = "label") -> DiscreteVariable:
    """The class variable of the labelled images."""
    return DiscreteVariable(name, values=tuple(classes))


def label_name(domain: Domain) -> str:
    """What the labels are called as a class: like the input's categorical class (so the
    quick model predicts it in Predictions and Test & Score), else "label"."""
    class_var = domain.class_var
    return class_var.name if class_var is not None and class_var.is_discrete else "label"


def _codes(labels: Sequence[Optional[str]], classes: Sequence[str]) -> np.ndarray:
    index = {c: float(i) for i, c in enumerate(classes)}
    return np.array([index.get(label, np.nan) if label is not None else np.nan
                     for label in labels], dtype=float)


def labelled_images(table: Table, labels: Sequence[Optional[str]],
                    classes: Sequence[str]) -> Optional[Table]:
    """Only the labelled rows, with the label as the class, named as :func:`label_name`
    says (the input's class moves to the metas, renamed "category (given)" if it has
    that name); None when nothing is labelled."""
    codes = _codes(labels, classes)
    rows = np.flatnonzero(~np.isnan(codes))
    if not len(rows):
        return None
    domain = table.domain
    name = label_name(domain)
    names = [v.name for v in domain.attributes + domain.metas]
    given = tuple(var.renamed(get_unique_names(names + [name], f"{var.name} (given)"))
                  if var.name == name else var for var in domain.class_vars)
    label = label_variable(classes, get_unique_names(names, name))
    out_domain = Domain(domain.attributes, label, domain.metas + given)
    out = table[rows].transform(out_domain)
    with out.unlocked(out.Y):
        out.Y = codes[rows]
    out.name = "Labelled images"
    return out


def annotated_images(table: Table, labels: Sequence[Optional[str]],
                     classes: Sequence[str], refresh: Optional[Refresh]) -> Table:
    """Every row, with metas ``label``, ``prediction`` and ``confidence`` added."""
    domain = table.domain
    names = [v.name for v in domain.variables + domain.metas]
    label_name, predicted_name, confidence_name = get_unique_names(
        names, ["label", "prediction", "confidence"])
    new = (label_variable(classes, label_name), label_variable(classes, predicted_name),
           ContinuousVariable(confidence_name, number_of_decimals=2))
    out = table.transform(Domain(domain.attributes, domain.class_vars, domain.metas + new))
    predicted = np.full(len(table), np.nan)
    confidence = np.full(len(table), np.nan)
    if refresh is not None and refresh.probabilities is not None \
            and len(refresh.probabilities) == len(table):
        predicted = refresh.predicted.astype(float)
        predicted[predicted < 0] = np.nan
        confidence = refresh.confidence
    with out.unlocked(out.metas):
        out.metas[:, -3] = _codes(labels, classes)
        out.metas[:, -2] = predicted
        out.metas[:, -1] = confidence
    out.name = "Images"
    return out
