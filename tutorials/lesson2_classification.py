#!/usr/bin/env python3
"""Lesson 2: teach a computer to read handwritten digits, in two ways, and check its work.

    python tutorials/lesson2_classification.py
    python tutorials/lesson2_classification.py --per-class 10 --folds 3 --epochs 2
    python tutorials/lesson2_classification.py --data my_images   # one subfolder per class
    python -m orangecontrib.deepimage.tutorials.lesson2_classification
    python tutorials/lesson2_classification.py --heatmaps heatmaps/   # step 5 too

The same steps as the workflow lesson2_classification.ows, without a screen:

1. Import Images reads the folder (tutorials/digits); the subfolder of each image
   (0, 1, ..., 9) is its class. The digits are written first if that folder is missing.
2. Image Embedder turns every image into 512 numbers with SqueezeNet, a network that
   was trained on a million photos; it runs on this computer.
3. Test & Score compares two ways of learning the digits from examples, with
   cross-validation: the images are split into K groups ("folds"); each group is
   predicted by models trained on the other groups, so every image is predicted by a
   model that never saw it.
   - Logistic Regression learns from the 512 numbers of Image Embedder.
   - The Trainer's image classifier fine-tunes SqueezeNet itself on the images.
4. Confusion Matrix counts which digit was predicted for which digit, and the images
   that were predicted wrong (what Image Viewer shows in the workflow) are listed.
5. With ``--heatmaps DIR``: the Trainer learns from all the images, as it does in the
   workflow for Image Viewer, and its network shows where it looks on each of its
   mistakes: a Grad-CAM overlay per image in DIR, and the spot it looked at hardest.

The widgets call the same functions as this script: Import Images and Image Embedder
those of lesson_steps, the Trainer makes an ``ImageClassifierLearner``, and Test & Score
runs Orange's ``CrossValidation``. The settings below are the workflow's.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from Orange.classification import LogisticRegressionLearner
from Orange.data import Table
from Orange.evaluation import AUC, CA, F1, CrossValidation, Results

from orangecontrib.deepimage.data import image_paths
from orangecontrib.deepimage.embedder_job import EmbedderChoice
from orangecontrib.deepimage.learner import ImageClassifierLearner
from orangecontrib.deepimage.tutorials import DIGITS_DIR
from orangecontrib.deepimage.tutorials.lesson_steps import PrintedState, embed_images, \
    import_images

# --- the lesson's settings: the same as in lesson2_classification.ows -------------------

EMBEDDER = EmbedderChoice(model="squeezenet")  # Image Embedder: SqueezeNet, on this computer
FOLDS = 3  # Test & Score: cross-validation with 3 folds, stratified
RANDOM_STATE = 42  # the seed Test & Score uses to split the folds
# The Trainer: fine-tune SqueezeNet (its last layer first, then the whole network) on
# images lowered to 96 pixels (SqueezeNet's own 227 would be over 5 times the work; at
# 64 pixels it is faster still but less accurate), with no random flips (a mirrored
# digit is not a digit). Training stops early when the held-out images stop improving;
# the epochs, batch size and learning rate (AdamW's, the backbone's; the last layer's is
# ten times it) are the fine-tuning preset, and predictions average 5 views.
NETWORK, MODE = "squeezenet", "fine-tune"
EPOCHS = 12
IMAGE_SIZE = 96
BATCH_SIZE = 32
LEARNING_RATE = 0.0001
FLIP = False
DEVICE = "auto"  # an NVIDIA GPU when there is one, else the CPU


# --- the result --------------------------------------------------------------------------

@dataclass(frozen=True)
class Mistake:
    """An image one method predicted wrong."""

    path: str  # the image file
    actual: str  # its class (the folder it is in)
    predicted: str  # what the method said


@dataclass(frozen=True)
class MethodScores:
    """How one method did in the cross-validation: Test & Score's columns."""

    name: str
    auc: float
    ca: float  # classification accuracy: the share of images predicted right
    f1: float
    mistakes: "tuple[Mistake, ...]"  # the off-diagonal cells of its confusion matrix


@dataclass(frozen=True)
class LessonResult:
    """Everything the lesson shows: the data, Test & Score's results and their summary."""

    folder: str
    data: Table  # Image Embedder's output: the images with their 512 numbers
    results: Results  # Orange's evaluation results, as Test & Score outputs them
    methods: "tuple[MethodScores, ...]"
    seconds: "dict[str, float]"  # time of each step: import, embed, evaluate

    @property
    def classes(self) -> "list[str]":
        return list(self.data.domain.class_var.values)

    def confusion_matrix(self, method: int) -> np.ndarray:
        """Counts of (actual class, predicted class) for one method, as Confusion Matrix."""
        n = len(self.classes)
        matrix = np.zeros((n, n), dtype=int)
        actual = self.results.actual.astype(int)
        predicted = self.results.predicted[method].astype(int)
        np.add.at(matrix, (actual, predicted), 1)
        return matrix


# --- the steps -----------------------------------------------------------------------------
# Import Images and Image Embedder are lesson_steps.import_images and embed_images.

def make_learners(epochs: int = EPOCHS) -> list:
    """The two learners the workflow connects to Test & Score."""
    # Logistic Regression with the settings of Orange's widget (Ridge, C=1)
    logistic = LogisticRegressionLearner(penalty="l2", C=1.0, max_iter=10000, random_state=0)
    logistic.name = "Logistic Regression"
    # The Trainer's learner: it reads the images themselves, not the 512 numbers
    network = ImageClassifierLearner(
        NETWORK, MODE, epochs=epochs, image_size=IMAGE_SIZE, batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE, flip=FLIP, device=DEVICE)
    return [logistic, network]


def test_and_score(data: Table, learners: list, folds: int = FOLDS) -> Results:
    """Test & Score: stratified K-fold cross-validation (each class spread evenly over
    the folds), split with Test & Score's own seed."""
    state = PrintedState("Test & Score")
    cross_validation = CrossValidation(k=folds, stratified=True, random_state=RANDOM_STATE,
                                       store_data=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # notes from scikit-learn's solvers and the like
        results = cross_validation(data, learners,
                                   callback=lambda done: state.set_progress_value(100 * done))
    results.learner_names = [learner.name for learner in learners]
    state.done(f"{folds}-fold cross-validation of {len(learners)} methods on "
               f"{len(data)} images")
    return results


def scores(results: Results, data: Table) -> "list[MethodScores]":
    """Each method's AUC, CA and F1 (averaged over the classes, weighted by their size, as
    Test & Score shows them) and the images it predicted wrong."""
    paths = image_paths(data)
    classes = data.domain.class_var.values
    failed = [f"{name}: {error}" for name, error in zip(results.learner_names, results.failed)
              if error]
    if failed:
        raise RuntimeError("Training failed: " + "; ".join(map(str, failed)))
    auc, ca, f1 = AUC(results), CA(results), F1(results, average="weighted")
    methods = []
    for i, name in enumerate(results.learner_names):
        actual, predicted = results.actual.astype(int), results.predicted[i].astype(int)
        # results come fold by fold; row_indices says which row of the data each one is
        mistakes = tuple(
            Mistake(paths[results.row_indices[k]], classes[actual[k]], classes[predicted[k]])
            for k in np.flatnonzero(actual != predicted))
        mistakes = tuple(sorted(mistakes, key=lambda m: m.path))
        methods.append(MethodScores(name, float(auc[i]), float(ca[i]), float(f1[i]), mistakes))
    return methods


def run(data_dir: str = DIGITS_DIR, per_class: Optional[int] = None, folds: int = FOLDS,
        epochs: int = EPOCHS) -> LessonResult:
    """The whole lesson: import, embed, cross-validate both methods, score."""
    seconds = {}
    start = time.perf_counter()
    images = import_images(data_dir, per_class)
    seconds["import"] = time.perf_counter() - start
    start = time.perf_counter()
    data = embed_images(images, EMBEDDER).embedded
    seconds["embed"] = time.perf_counter() - start
    start = time.perf_counter()
    results = test_and_score(data, make_learners(epochs), folds)
    seconds["evaluate"] = time.perf_counter() - start
    return LessonResult(os.path.abspath(data_dir), data, results,
                        tuple(scores(results, data)), seconds)


# --- what it prints --------------------------------------------------------------------------

def score_table(result: LessonResult) -> str:
    """Test & Score's table: one row per method."""
    width = max(len(m.name) for m in result.methods)
    lines = [f"{'Method'.ljust(width)}    AUC     CA     F1"]
    lines += [f"{m.name.ljust(width)}  {m.auc:5.3f}  {m.ca:5.3f}  {m.f1:5.3f}"
              for m in result.methods]
    return "\n".join(lines)


def matrix_text(result: LessonResult, method: int) -> str:
    """The Confusion Matrix: rows are the actual classes, columns the predicted ones."""
    matrix, classes = result.confusion_matrix(method), result.classes
    cell = max(max(len(c) for c in classes), len(str(matrix.max()))) + 2
    lines = [" " * cell + "".join(c.rjust(cell) for c in classes)]
    lines += [c.rjust(cell) + "".join(str(n).rjust(cell) for n in row)
              for c, row in zip(classes, matrix)]
    return "\n".join(lines)


def report(result: LessonResult) -> str:
    parts = ["", score_table(result)]
    for i, method in enumerate(result.methods):
        right = len(result.results.actual) - len(method.mistakes)
        parts += ["", f"Confusion matrix of {method.name}",
                  "(rows: the actual class; columns: the predicted one; "
                  "the diagonal is right)",
                  matrix_text(result, i), "",
                  f"{method.name} predicted {right} of {len(result.results.actual)} images "
                  f"right and these {len(method.mistakes)} wrong:"]
        parts += [f"  {os.path.relpath(m.path, result.folder)}: predicted {m.predicted} "
                  f"(actual {m.actual})" for m in method.mistakes]
    times = result.seconds
    parts += ["", f"Time: import {times['import']:.1f} s, embedding {times['embed']:.1f} s, "
                  f"Test & Score {times['evaluate']:.1f} s "
                  f"(total {sum(times.values()):.0f} s)."]
    return "\n".join(parts)


def explain_mistakes(result: LessonResult, folder: str, epochs: int = EPOCHS) -> "list[dict]":
    """Step 5, Image Viewer's heatmaps: the Trainer's network, trained on all the images,
    explains the images the cross-validated network got wrong; an overlay PNG of each
    goes to ``folder``. Returns deepimage explain's JSON records."""
    from orangecontrib.deepimage.core.explain import Explainer, save_overlays
    mistakes = [m.path for m in result.methods[1].mistakes]
    if not mistakes:
        return []
    model = make_learners(epochs)[1](result.data)
    explanations = Explainer.for_model(model).explain(mistakes).explanations
    records = [e.as_dict() for e in explanations]
    for record, path in zip(records, save_overlays(explanations, folder)):
        record["overlay"] = path
    return records


def heatmaps_text(result: LessonResult, records: "list[dict]", folder: str) -> str:
    lines = ["", f"Where the network trained on all {len(result.data)} images looks, on the "
                 f"{len(records)} mistakes of cross-validation (overlays in {folder}):"]
    lines += [f"  {os.path.relpath(r['path'], result.folder)}: now predicted {r['predicted']} "
              f"({r['probability']:.0%}), looking hardest at x={r['peak_x']}, "
              f"y={r['peak_y']}" for r in records]
    return "\n".join(lines)


def main(argv: "Sequence[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DIGITS_DIR, metavar="DIR",
                        help="a folder with one subfolder of images per class "
                             "(default: tutorials/digits, written if missing)")
    parser.add_argument("--per-class", type=int, default=None, metavar="N",
                        help="use only N images of each class (default: all)")
    parser.add_argument("--folds", type=int, default=FOLDS, metavar="K",
                        help=f"cross-validation folds (default {FOLDS})")
    parser.add_argument("--epochs", type=int, default=EPOCHS, metavar="E",
                        help=f"most epochs of fine-tuning the whole network "
                             f"(default {EPOCHS})")
    parser.add_argument("--heatmaps", metavar="DIR", default=None,
                        help="also train on all the images and write where the network "
                             "looks on each mistake (overlay PNGs) into DIR")
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    if args.per_class is not None and args.per_class < args.folds:
        parser.error("--per-class must be at least --folds: every fold needs every class")
    result = run(args.data, args.per_class, args.folds, args.epochs)
    print(report(result))
    if args.heatmaps:
        print(heatmaps_text(result, explain_mistakes(result, args.heatmaps, args.epochs),
                            args.heatmaps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
