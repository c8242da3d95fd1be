"""An Orange learner that trains a deep network on a table's images; no Qt.

``ImageClassifierLearner`` reads the image column (type=image) and the discrete
class of any table (Import Images' output directly, or Image Embedder's, whose
features it ignores) and trains with core.train. It goes into Test & Score beside
Logistic Regression: Test & Score deep-copies learners before fitting, so a
learner holds no torch state, only its parameters.

Test & Score cancels an evaluation by raising a flag on its task, which it reads only
between folds; the learner finds that flag among its callers (``caller_interruption``)
and reads it per batch, so a cancelled evaluation stops within a batch, not after the
fold's training.

The fitted ``ImageClassifierModel`` predicts class probabilities for every row
(unreadable images get the training class frequencies, with a warning), pickles
for Save/Load Model (weights as numpy arrays, so it loads on a computer without a
GPU), and embeds images with its own penultimate layer (``model.embedder()``).
"""
from __future__ import annotations

import copy
import dataclasses
import sys
import warnings
from typing import Callable, Optional

import numpy as np
from Orange.base import Learner, Model
from Orange.data import Domain, Table
from Orange.util import dummy_callback

from .core.cancel import Cancelled
from .core.models import get_spec
from .core.train import EpochRecord, TrainConfig, TrainResult, preset, weights_fingerprint
from .data import image_column, image_paths

__all__ = ["ImageClassifierLearner", "ImageClassifierModel", "labelled_rows", "rate_field",
           "count_of", "skipped_message", "caller_interruption"]

# Attributes that are shared, not copied, by deepcopy, and dropped when pickling:
# a widget's bound method must not be deep-copied (with its widget) by Test & Score.
_CALLBACKS = ("progress_callback", "should_stop", "epoch_callback")
_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def labelled_rows(data: Table) -> "tuple[np.ndarray, np.ndarray]":
    """(positions of the rows that have a class, their class indices as int64)."""
    y = data.Y.ravel() if data.Y.ndim > 1 else data.Y
    known = np.flatnonzero(~np.isnan(y.astype(float)))
    return known, y[known].astype(np.int64)


def rate_field(mode: str) -> str:
    """The TrainConfig field that is ``mode``'s learning rate: "last-layer" trains the
    last layer alone, with Adam at ``head_learning_rate``; the others at ``learning_rate``."""
    return "head_learning_rate" if mode == "last-layer" else "learning_rate"


def _interruption_flag(value) -> "Callable[[], bool] | None":
    """``value.is_interruption_requested`` when ``value`` is a task (Orange's TaskState or
    alike) or a function that closes over one (Test & Score's progress callback). Looked
    up on the class, so a Mock, which answers any attribute, is not taken for a task."""
    candidates = [value]
    closure = getattr(value, "__closure__", None) if callable(value) else None
    for cell in closure or ():
        try:
            candidates.append(cell.cell_contents)
        except ValueError:  # an empty cell
            pass
    for candidate in candidates:
        if callable(getattr(type(candidate), "is_interruption_requested", None)):
            return candidate.is_interruption_requested
    return None


def caller_interruption(depth: int = 64) -> "Callable[[], bool] | None":
    """The cancel flag of the Orange task this thread is running for, or None.

    Test & Score trains a learner in its worker thread as ``learner(data)``: no callback
    reaches the learner, and its own progress callback, which raises when the evaluation
    is cancelled (a new input, the widget closed), runs only between folds. That callback
    is a local of Orange.evaluation's sampler (``Validation.__call__``) and closes over the
    task, so it is found here among the callers' frames (``depth`` at most)."""
    frame = sys._getframe(1)
    for _ in range(depth):
        if frame is None:
            break
        for value in list(frame.f_locals.values()):
            flag = _interruption_flag(value)
            if flag is not None:
                return flag
        frame = frame.f_back
    return None


def _stop_check(*checks) -> "Callable[[], bool] | None":
    """One ``should_stop`` from several (None where there are none)."""
    checks = [c for c in checks if c is not None]
    if not checks:
        return None
    return lambda: any(check() for check in checks)


class _Callbacks:
    """deepcopy shares the callbacks; pickling leaves them out."""

    def __deepcopy__(self, memo):
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = value if key in _CALLBACKS else copy.deepcopy(value, memo)
        return new

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        state = dict(state)
        for key in _CALLBACKS:
            if key in state:
                state[key] = None
        return state


class ImageClassifierLearner(_Callbacks, Learner):
    """Trains (or fine-tunes) a network on the images of a table.

    Parameters mirror core.train.TrainConfig; those left as None take the
    network's preset (``core.train.preset(model, mode)``). ``learning_rate`` is the
    rate the mode trains at (``rate_field(mode)``: the last layer's in "last-layer").
    ``tta=5`` (the fine-tuning preset's) makes the model predict each image as the mean
    of five views, ``tta=1`` once; ``time_budget=SECONDS`` bounds the training.
    Set ``progress_callback`` (``(done, total)``), ``should_stop`` (``() -> bool``,
    checked per batch) and ``epoch_callback`` (``(EpochRecord) -> None``) to follow or
    stop training.
    """

    supports_weights = False

    def __init__(self, model: str = "squeezenet", mode: str = "fine-tune",
                 epochs: "int | None" = None, image_size: "int | None" = None,
                 batch_size: "int | None" = None, learning_rate: "float | None" = None,
                 validation_fraction: "float | None" = None, patience: "int | None" = None,
                 class_weighting: "bool | None" = None, seed: int = 0, device: str = "auto",
                 random_weights: bool = False, preprocessors=None, **options):
        super().__init__(preprocessors=preprocessors)
        unknown = set(options) - set(_CONFIG_FIELDS)
        if unknown:
            raise TypeError(f"Unknown training options: {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(_CONFIG_FIELDS)}")
        self.model, self.mode = get_spec(model).name, mode
        self.epochs, self.image_size, self.batch_size = epochs, image_size, batch_size
        self.learning_rate, self.validation_fraction = learning_rate, validation_fraction
        self.patience, self.class_weighting, self.seed = patience, class_weighting, seed
        self.device, self.random_weights = device, random_weights
        self.options = dict(options)
        self.progress_callback: "Optional[Callable[[int, int], None]]" = None
        self.should_stop: "Optional[Callable[[], bool]]" = None
        self.epoch_callback: "Optional[Callable[[EpochRecord], None]]" = None
        self.config()  # wrong parameters fail here, not in a Test & Score fold
        self.name = f"Image classifier ({get_spec(model).display_name})"

    def config(self) -> TrainConfig:
        """The TrainConfig these parameters give (preset values where they are None)."""
        chosen = {name: getattr(self, name) for name in (
            "epochs", "image_size", "batch_size", "validation_fraction",
            "patience", "class_weighting", "seed", "device", "random_weights")}
        chosen[rate_field(self.mode)] = self.learning_rate
        chosen.update(self.options)
        chosen = {k: v for k, v in chosen.items() if v is not None}
        return dataclasses.replace(preset(self.model, self.mode), **chosen)

    def incompatibility_reason(self, domain: Domain) -> Optional[str]:
        if image_column(domain) is None:
            return ("Image classifier needs a column of images (a text column marked "
                    "type=image, as Import Images makes); this data has none.")
        class_var = domain.class_var
        if class_var is None or not class_var.is_discrete or len(domain.class_vars) > 1:
            return ("Image classifier needs a categorical target (one class, e.g. the "
                    "image folders' 'category'); set one with Select Columns.")
        return None

    def fit_storage(self, data: Table) -> "ImageClassifierModel":
        from .core.train import train_classifier
        reason = self.incompatibility_reason(data.domain)
        if reason:
            raise ValueError(reason)
        column = image_column(data.domain)
        paths = image_paths(data, column)
        known, labels = labelled_rows(data)
        abandoned = caller_interruption()  # Test & Score's cancel, read per batch
        result = train_classifier([paths[i] for i in known], labels,
                                  len(data.domain.class_var.values), self.config(),
                                  progress=self.progress_callback,
                                  should_stop=_stop_check(self.should_stop, abandoned),
                                  on_epoch=self.epoch_callback)
        if abandoned is not None and abandoned():
            # the caller has given up on this model: stop now, do not predict with it
            raise Cancelled("The evaluation was cancelled while the network trained.")
        # positions among the labelled rows -> rows of ``data``
        result = dataclasses.replace(result, skipped=tuple(
            dataclasses.replace(s, index=int(known[s.index])) for s in result.skipped))
        if result.skipped:
            warnings.warn(skipped_message(result.skipped, ("was", "were"),
                                          "left out of training"))
        return ImageClassifierModel(data.domain, result, column.name)


def count_of(n: int, singular: str, plural: "str | None" = None) -> str:
    """'1 image', '2 images', '1,234 images' (``plural`` for irregular nouns)."""
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


def skipped_message(skipped, verb: "tuple[str, str]", rest: str) -> str:
    """'1 image could not be read and was left out of training: a.png: not found', with
    ``verb`` = (singular, plural) agreeing with the number of images."""
    examples = "; ".join(f"{s.source}: {s.reason}" for s in skipped[:3])
    more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
    return f"{count_of(len(skipped), 'image')} could not be read and " \
           f"{verb[len(skipped) != 1]} {rest}: {examples}{more}"


class ImageClassifierModel(_Callbacks, Model):
    """A trained network as an Orange model: probabilities for every row of a table.

    Keeps the training ``history`` (EpochRecord per epoch), ``best_epoch``, the
    ``config``, the training images that could not be read (``skipped``: core.images.Skipped,
    ``index`` the row of the training table) and the weights as numpy arrays
    (``state``); the torch network is rebuilt from them on first use, on the CPU unless
    ``device`` says otherwise.
    """

    skipped: tuple = ()  # models pickled before it was kept
    baseline_accuracy: float = float("nan")  # ... and before logistic regression's was
    budget_note: str = ""
    tta: int = 1  # ... and before test-time augmentation

    def __init__(self, domain: Domain, result: TrainResult, image_column: str):
        super().__init__(domain)
        self.config: TrainConfig = result.config
        self.image_size = result.image_size
        self.image_column = image_column
        self.class_values = tuple(domain.class_var.values)
        self.history: "tuple[EpochRecord, ...]" = result.history
        self.best_epoch = result.best_epoch
        self.stopped_early, self.cancelled = result.stopped_early, result.cancelled
        self.class_counts = result.class_counts
        self.skipped = tuple(result.skipped)
        self.training_seconds = result.seconds
        self.baseline_accuracy = result.baseline_accuracy
        self.budget_note = result.budget_note
        # views averaged in predict_storage (1: none, 5: core.train.augment.tta_views)
        self.tta = getattr(result.config, "tta", 1)
        self.state = {k: v.detach().cpu().numpy().copy()
                      for k, v in result.net.state_dict().items()}
        self.weights_id = "trained-" + weights_fingerprint(result.net)
        self.device = "auto"  # where predict_storage runs the network
        self.progress_callback: "Optional[Callable[[int, int], None]]" = None
        self.should_stop: "Optional[Callable[[], bool]]" = None
        self._net = result.net

    @property
    def spec(self):
        return get_spec(self.config.model)

    @property
    def net(self):
        """The network (core.networks.EmbeddingNet, CPU, eval mode), built on first use."""
        net = self.__dict__.get("_net")
        if net is None:
            import torch
            from .core.networks import EmbeddingNet, build_backbone
            backbone = build_backbone(self.spec)
            backbone.reset_classifier(len(self.class_values))
            net = EmbeddingNet(self.spec, backbone)
            net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.state.items()})
            self._net = net = net.eval()
        return net

    @property
    def best(self) -> "EpochRecord | None":
        """The epoch whose weights the model has (None if it has no history)."""
        return next((r for r in self.history if r.epoch == self.best_epoch), None)

    @property
    def prior(self) -> np.ndarray:
        """Class frequencies of the training images (what an unreadable image gets)."""
        counts = np.asarray(self.class_counts, dtype=float)
        return counts / counts.sum()

    def data_to_model_domain(self, data: Table, progress_callback=dummy_callback) -> Table:
        """The table as it is: the model reads only the image column, whose paths are
        resolved against the table's own origin (new images may come from another folder),
        and ignores the features (Orange's conversion would reject a table whose features
        differ from the training table's)."""
        progress_callback(1)
        return data

    def predict_storage(self, data: Table) -> np.ndarray:
        from .core.train import predict_proba
        column = image_column(data.domain, self.image_column)
        if column is None:
            raise ValueError("The data has no image column (a text column marked "
                             "type=image), so the image classifier cannot predict.")
        paths = image_paths(data, column)
        probs = np.tile(self.prior, (len(paths), 1))
        if paths:
            predicted, rows, skipped = predict_proba(
                self.net, paths, self.image_size, device=self.device, tta=self.tta,
                progress=self.progress_callback,
                should_stop=_stop_check(self.should_stop, caller_interruption()))
            probs[rows] = predicted
            if skipped:
                warnings.warn(skipped_message(skipped, ("gets", "get"),
                                              "the training class frequencies"))
        return probs

    def embedder(self, **options):
        """A core.local_embedder.Embedder that embeds with this network's penultimate layer, at
        the size it was trained at; its vectors are cached under a fingerprint of these
        weights. ``options`` go to Embedder (device=, cache=, batch_size=, ...)."""
        from .core.local_embedder import Embedder
        return Embedder(self.spec, net=self.net, weights_id=self.weights_id,
                        image_size=self.image_size, **options)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_net", None)  # rebuilt from ``state`` on the CPU after loading
        return state

    def __str__(self) -> str:
        return f"{self.name}: {self.spec.display_name}, {self.config.mode}, " \
               f"{self.image_size} px, best epoch {self.best_epoch}"
