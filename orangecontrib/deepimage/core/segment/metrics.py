"""Scores of a segmentation against a known truth: object F1 at an IoU threshold
(each true object matched to at most one found object), and pixel accuracy."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ObjectMatch", "match_objects", "object_f1", "pixel_accuracy"]


@dataclass(frozen=True)
class ObjectMatch:
    """True positives, false positives (found, not true) and false negatives (missed)."""

    tp: int
    fp: int
    fn: int

    @property
    def f1(self) -> float:
        total = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / total if total else 1.0


def match_objects(truth: np.ndarray, found: np.ndarray, iou: float = 0.5) -> ObjectMatch:
    """Match the objects of two label images: a pair counts when their IoU exceeds
    ``iou`` (>= 0.5 makes every match one-to-one)."""
    truth, found = np.asarray(truth).ravel(), np.asarray(found).ravel()
    n_true, n_found = int(truth.max(initial=0)), int(found.max(initial=0))
    true_area = np.bincount(truth, minlength=n_true + 1)
    found_area = np.bincount(found, minlength=n_found + 1)
    both = (truth > 0) & (found > 0)
    pairs = truth[both].astype(np.int64) * (n_found + 1) + found[both]
    keys, overlap = np.unique(pairs, return_counts=True)
    t, f = keys // (n_found + 1), keys % (n_found + 1)
    scores = overlap / (true_area[t] + found_area[f] - overlap)
    good = scores > iou
    tp = int(len(np.unique(t[good])))
    count_true = int(np.count_nonzero(true_area[1:]))
    count_found = int(np.count_nonzero(found_area[1:]))
    return ObjectMatch(tp, count_found - int(len(np.unique(f[good]))), count_true - tp)


def object_f1(truth: np.ndarray, found: np.ndarray, iou: float = 0.5) -> float:
    """F1 of :func:`match_objects`."""
    return match_objects(truth, found, iou).f1


def pixel_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Share of pixels whose class is right."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if truth.shape != predicted.shape:
        raise ValueError(f"shapes differ: {truth.shape} and {predicted.shape}")
    return float(np.mean(truth == predicted))
