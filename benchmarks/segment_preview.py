#!/usr/bin/env python3
"""How long Segment Images' live preview takes for the image on screen: the preview
before (train the full forest, predict the whole image) and now (a quick forest on
kept features, the part in view first), side by side in one run.

    python benchmarks/segment_preview.py                     # 1024 and 2048 px a side
    python benchmarks/segment_preview.py --sides 512 --repeats 5 --screen 600

For each size: two generated cell images (core.segment.synthetic), sparse labels (1 %
of the pixels) on the first, and the editor's jobs as the widget runs them in its
worker. ``--screen``: the canvas's side in screen pixels (the image fitted in it is
predicted every n-th pixel first, n = side / screen, rounded). Times are medians of
``--repeats`` runs, in seconds:

- before, stroke: segmentation.preview_classifier, a new classifier (train, predict all);
- before, switch: the same with the classifier kept (predict all);
- now, stroke: one more stroke on the image on screen (each repeat another): the quick
  forest retrained, the view shown (``view``), then the whole image (``whole``);
- now, first stroke: the first strokes (one background, one object) on an image just
  shown (nothing kept yet), and on one shown for a few seconds (the widget computes
  its features while nothing is painted: seglive.warm_features);
- now, zoomed in: a stroke with a 512 x 512 part of the image in view (step 1);
- now, switch: to an image not shown before (its features computed), and back to one
  shown before (kept).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
from PIL import Image

from orangecontrib.deepimage.core.segment.synthetic import make_cells, sparse_labels
from orangecontrib.deepimage.seglive import (PreviewModels, View, live_classifier,
                                             warm_features)
from orangecontrib.deepimage.segmentation import (PixelCache, TrainedClassifiers,
                                                  preview_classifier)


class State:
    """TaskState's part the jobs use; notes when the first (view) map arrives."""

    def __init__(self):
        self.start, self.view = time.perf_counter(), None

    def is_interruption_requested(self) -> bool:
        return False

    def set_partial_result(self, _) -> None:
        if self.view is None:
            self.view = time.perf_counter() - self.start

    def run(self, job, *args) -> tuple[float, float]:
        """(seconds to the view's map, seconds to the whole image's)."""
        self.start = time.perf_counter()
        job(*args, self)
        whole = time.perf_counter() - self.start
        return (whole if self.view is None else self.view), whole


def median(values) -> float:
    return statistics.median(values)


def stroke(labels: np.ndarray, i: int, value: int) -> np.ndarray:
    """The labels with one more short stroke (5 px wide, 120 px long) of ``value``."""
    out = labels.copy()
    y, x = 40 + 37 * i % (labels.shape[0] - 80), 40 + 53 * i % (labels.shape[1] - 200)
    out[y:y + 5, x:x + 120] = value
    return out


def images(side: int, folder: str) -> list:
    paths = []
    for seed in range(2):
        cells = make_cells((side, side), count=max(side // 6, 10), seed=seed)
        path = os.path.join(folder, f"{side}-{seed}.png")
        Image.fromarray(cells.image).save(path)
        paths.append((path, cells.labels))
    return paths


def before(pixels, labels, other, repeats) -> dict:
    def run(trained):
        start = time.perf_counter()
        preview_classifier(pixels, labels, "filters", other, None, State(), trained=trained)
        return time.perf_counter() - start
    kept = TrainedClassifiers()
    run(kept)
    return {"stroke": median([run(TrainedClassifiers()) for _ in range(repeats)]),
            "switch": median([run(kept) for _ in range(repeats)])}


def now(pixels, labels, paths, repeats, screen) -> dict:
    first, other = paths
    shape = pixels.get(first).shape
    whole, zoomed = View.whole(shape, screen), View(0, 0, 512, 512, 1)
    job = live_classifier
    painted = stroke(stroke(np.zeros_like(labels[first]), 0, 1), 1, 2)  # one of each
    out = {"first": State().run(job, pixels, PreviewModels(), {first: painted}, "filters",
                                first, None, whole)}
    ahead = PreviewModels()
    warm_features(pixels, ahead, first, "filters", State())  # while the image is looked at
    out["first, ahead"] = State().run(job, pixels, ahead, {first: painted}, "filters", first,
                                      None, whole)
    models = PreviewModels()
    State().run(job, pixels, models, labels, "filters", first, None, whole)  # shown
    strokes = [State().run(job, pixels, models, {first: stroke(labels[first], i, 2 + i % 2)},
                           "filters", first, None, whole) for i in range(repeats)]
    out["stroke"] = tuple(median(t) for t in zip(*strokes))
    zoom = [State().run(job, pixels, models, {first: stroke(labels[first], 50 + i, 2)},
                        "filters", first, None, zoomed) for i in range(repeats)]
    out["zoomed"] = tuple(median(t) for t in zip(*zoom))
    last = {first: stroke(labels[first], 50 + repeats - 1, 2)}
    news = []
    for _ in range(repeats):
        models.store = type(models.store)(models.store.max_bytes)  # never shown before
        State().run(job, pixels, models, last, "filters", first, None, whole)
        news.append(State().run(job, pixels, models, last, "filters", other, None, whole))
    out["switch new"] = tuple(median(t) for t in zip(*news))
    back = [State().run(job, pixels, models, last, "filters", first, None, whole)
            for _ in range(repeats)]
    out["switch back"] = tuple(median(t) for t in zip(*back))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--screen", type=int, default=600)
    args = parser.parse_args(argv)
    print("| image | case | before (s) | now: view (s) | now: whole image (s) | "
          "before / now view |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for side in args.sides:
            paths = images(side, folder)
            pixels = PixelCache()
            for path, _ in paths:
                pixels.get(path)  # decoded once when the image is first shown
            labels = {paths[0][0]: sparse_labels(paths[0][1], 0.01)}
            old = before(pixels, labels, paths[1][0], args.repeats)
            new = now(pixels, labels, [p for p, _ in paths], args.repeats, args.screen)
            rows = (("stroke", "stroke"), ("first stroke, nothing kept", None),
                    ("first stroke, features computed ahead", None),
                    ("zoomed in, stroke", None), ("switch to a new image", "switch"),
                    ("switch back", "switch"))
            for (case, key), times in zip(rows, (new["stroke"], new["first"],
                                                 new["first, ahead"], new["zoomed"],
                                                 new["switch new"], new["switch back"])):
                was = old[key] if key else None
                print(f"| {side} x {side} | {case} | "
                      f"{'' if was is None else f'{was:.2f}'} | {times[0]:.2f} | "
                      f"{times[1]:.2f} | "
                      f"{'' if was is None else f'{was / times[0]:.1f}x'} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
