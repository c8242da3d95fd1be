"""Training a classifier on images: last layer only, fine-tuning, or from scratch.

No Qt and no Orange here: the learner (learner.py), the CLI and the Trainer widget
all call :func:`train_classifier` (loop.py) and :func:`predict_proba` (core.predict).
What decides a run, ``TrainConfig`` and the presets, is in core.presets; both are
importable from here as well. One job per module:

- ``loop``: train_classifier, from paths to a TrainResult, and the time budget;
- ``epochs``: the epochs of a phase, validation, early stopping, the deadline;
- ``augment``: random crops, shifts and flips while training; test-time views;
- ``baseline``: logistic regression on the embeddings, on the same validation split;
- ``progress``: the progress arithmetic; ``records``: what a run gives back.

Modes:

- ``"last-layer"``: the backbone stays as it is; images are embedded once through
  core.local_embedder.Embedder (its persistent cache makes reruns and Test & Score folds
  nearly free) and only the last layer is trained, on the embeddings: seconds on a CPU.
- ``"fine-tune"``: the same, for ``head_epochs``, then the whole network trains
  (core.presets.FINE_TUNE_RECIPE: AdamW, one-cycle, the backbone at a tenth of the
  last layer's rate; core.schedule says how).
- ``"scratch"``: random initialisation, every layer at the same rate.

A stratified validation split drives early stopping; the best epoch's weights are
restored at the end. ``should_stop()`` is checked per batch: the run stops cleanly
and keeps the best model so far (Cancelled is raised only when there is none yet).
Decoded images are kept in memory between epochs and between Test & Score folds
(core.imagecache). ``progress(done, total)`` has one total for the whole run.
"""
from __future__ import annotations

from ..predict import predict_proba
from ..presets import (MIN_IMAGE_SIZE, MODES, OPTIMIZERS, TrainConfig, auto_image_size,
                       preset, size_for_images)
from .loop import build_net, train_classifier
from .records import EpochRecord, TrainResult, stratified_split, weights_fingerprint

_build_net = build_net  # the name tests and benchmarks knew

__all__ = ["MODES", "OPTIMIZERS", "MIN_IMAGE_SIZE", "TrainConfig", "EpochRecord",
           "TrainResult", "preset", "auto_image_size", "size_for_images", "train_classifier",
           "predict_proba", "weights_fingerprint", "stratified_split", "build_net"]
