#!/usr/bin/env python3
"""Lesson 5: teach the computer. Label 30 of the 500 digits, the ones it asks for, and
see how well it reads the other 470.

    python tutorials/lesson5_labelling.py
    python tutorials/lesson5_labelling.py --labels 50 --every 10
    python -m orangecontrib.deepimage.tutorials.lesson5_labelling

The same steps as the workflow lesson5_labelling.ows, without a screen:

1. Import Images reads the digits; Image Embedder turns each into 512 numbers
   (SqueezeNet, on this computer). The folders (0-9) are the truth, but Label Images is
   not told: it starts with no labels.
2. Label Images, view "Next to label": the student labels the first image it shows,
   then the next, 30 times. Here an oracle answers from the image's folder. After
   each label the quick model is refitted and the status line shows the accuracy
   estimated from the labels so far (cross-validated).
3. Test and Score, "Test on test data": Logistic Regression learns from Label Images'
   30 Labelled Images and is tested on all 500 digits with their folders' classes.
   The script does the same, and also labels 30 images picked at random, to compare.

The widget runs the same functions (labelling_session, labelling_jobs).
"""
from __future__ import annotations

import argparse
import random
import sys
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from Orange.classification import LogisticRegressionLearner
from Orange.data import Table
from Orange.evaluation import CA, TestOnTestData
from sklearn.exceptions import ConvergenceWarning

from orangecontrib.deepimage.labelling import suggest_next
from orangecontrib.deepimage.labelling_jobs import (SUGGESTIONS, label_name, labelled_images,
                                                    run_refresh)
from orangecontrib.deepimage.labelling_model import embedding_columns
from orangecontrib.deepimage.labelling_session import LabelSession, image_keys
from orangecontrib.deepimage.tutorials import DIGITS_DIR
from orangecontrib.deepimage.tutorials.lesson_steps import embed_images, import_images

# --- the lesson's settings ---------------------------------------------------------------
LABELS = 30  # how many images the student labels
EVERY = 5  # the status line is noted after every EVERY labels


@dataclass(frozen=True)
class Step:
    """The status after ``labelled`` labels."""

    labelled: int
    classes: int
    estimate: Optional[float]  # the status line's estimated accuracy (None: not yet)
    low: Optional[float]  # its 95 % interval
    high: Optional[float]
    actual: Optional[float]  # the quick model's accuracy on the images not labelled


@dataclass(frozen=True)
class LessonResult:
    data: Table  # Image Embedder's output, with the folders' classes
    steps: "tuple[Step, ...]"
    labelled: Table  # Label Images' Labelled Images output
    test_score: float  # Test and Score: Logistic Regression, trained on them, on all 500
    random_scores: "tuple[float, ...]"  # the same with as many labels picked at random,
    # five times (seeds 0-4)

    @property
    def random_score(self) -> float:
        return float(np.mean(self.random_scores))


class Quiet:
    """The widgets' task state, for the refits (nothing to show)."""

    def set_status(self, text: str) -> None:
        pass

    def set_progress_value(self, value: float) -> None:
        pass

    def is_interruption_requested(self) -> bool:
        return False


def oracle(data: Table) -> list:
    """The student's answers: each image's folder, the class Import Images gave it."""
    return [data.domain.class_var.values[int(v)] for v in data.Y]


def _step(data: Table, session: LabelSession, refresh, truth: list) -> Step:
    labels = session.row_labels()
    labelled = sum(label is not None for label in labels)
    classes = len({label for label in labels if label is not None})
    accuracy = refresh.accuracy
    actual = None
    if refresh.probabilities is not None:
        rest = [r for r, label in enumerate(labels) if label is None]
        predicted = refresh.predicted
        actual = float(np.mean([refresh.classes[predicted[r]] == truth[r] for r in rest]))
    return Step(labelled, classes, accuracy.mean if accuracy else None,
                accuracy.low if accuracy else None, accuracy.high if accuracy else None,
                actual)


def label_with_suggestions(data: Table, n_labels: int = LABELS, every: int = EVERY
                           ) -> "tuple[LabelSession, list]":
    """Label ``n_labels`` images, each time the first of "Next to label"."""
    truth = oracle(data)
    session = LabelSession()
    session.attach(image_keys(data))
    features = embedding_columns(data.domain)
    name = label_name(data.domain)
    steps = []
    for count in range(1, n_labels + 1):
        # the first image of "Next to label" (what run_refresh suggests, computed alone)
        row = suggest_next(data.X, session.row_labels(), SUGGESTIONS)[0]
        session.assign([row], truth[row])
        if count % every == 0:  # the status line the student reads now
            refresh = run_refresh(data.X, session.row_labels(), session.classes, features,
                                  Quiet(), class_name=name)
            steps.append(_step(data, session, refresh, truth))
    return session, steps


def test_on_all(data: Table, labels: Sequence[Optional[str]], classes: Sequence[str]
                ) -> "tuple[Table, float]":
    """Test and Score, Test on test data: Logistic Regression learns from the labelled
    images and is tested on every image with its folder's class."""
    labelled = labelled_images(data, labels, classes)
    with warnings.catch_warnings():  # scikit-learn's notes on Orange's arguments
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        results = TestOnTestData()(labelled, data, [LogisticRegressionLearner()])
    return labelled, float(CA(results)[0])


def random_labels(data: Table, n_labels: int, seed: int = 0) -> list:
    """As many labels on images picked at random (the comparison)."""
    truth = oracle(data)
    rows = set(random.Random(seed).sample(range(len(data)), n_labels))
    return [truth[r] if r in rows else None for r in range(len(data))]


def run(folder: str = DIGITS_DIR, n_labels: int = LABELS, every: int = EVERY,
        per_class: Optional[int] = None) -> LessonResult:
    """The whole lesson."""
    data = embed_images(import_images(folder, per_class)).embedded
    session, steps = label_with_suggestions(data, n_labels, every)
    labelled, score = test_on_all(data, session.row_labels(), session.classes)
    random_scores = []
    for seed in range(5):
        chance = random_labels(data, n_labels, seed)
        classes = sorted({c for c in chance if c is not None})
        random_scores.append(test_on_all(data, chance, classes)[1])
    return LessonResult(data, tuple(steps), labelled, score, tuple(random_scores))


def report(result: LessonResult) -> str:
    """The status line as it changed, and what Test and Score says."""
    lines = ["\nLabel Images, labelling the first image of 'Next to label' each time:",
             f"{'labels':>6}  {'classes':>7}  {'estimated accuracy':>18}  "
             f"{'accuracy on the other images':>28}"]
    for step in result.steps:
        estimate = (f"{step.estimate:.2f} ({step.low:.2f}-{step.high:.2f})"
                    if step.estimate is not None else "too few labels")
        actual = f"{step.actual:.2f}" if step.actual is not None else "-"
        lines.append(f"{step.labelled:>6}  {step.classes:>7}  {estimate:>18}  {actual:>28}")
    n = len(result.labelled)
    lines.append(f"\nTest and Score (test on test data): Logistic Regression trained on the "
                 f"{n} labelled images reads {result.test_score:.0%} of all "
                 f"{len(result.data)} digits right;")
    lines.append(f"trained on {n} images picked at random instead: "
                 f"{result.random_score:.0%} (mean of {len(result.random_scores)} draws: "
                 + ", ".join(f"{s:.0%}" for s in result.random_scores) + ").")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DIGITS_DIR,
                        help="folder with one subfolder of images per class (the oracle's "
                             "answers; default: tutorials/digits, written when missing)")
    parser.add_argument("--labels", type=int, default=LABELS,
                        help=f"how many images to label (default {LABELS})")
    parser.add_argument("--every", type=int, default=EVERY,
                        help=f"show the status after every N labels (default {EVERY})")
    parser.add_argument("--per-class", type=int, default=None,
                        help="use only the first N images of each class")
    args = parser.parse_args(argv)
    if args.labels < 2:
        parser.error("--labels must be at least 2")
    print(report(run(args.data, args.labels, args.every, args.per_class)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
