#!/usr/bin/env python3
"""How long Segment Images' live preview takes for the image on screen.

    python benchmarks/segment_preview.py               # 256, 512 and 1024 px a side
    python benchmarks/segment_preview.py --sides 2048 --repeats 3

For each size: two generated cell images (core.segment.synthetic), sparse labels (1 %
of the pixels) on the first, and the editor's jobs (orangecontrib.deepimage.segmentation)
as the widget runs them in its worker: a stroke (train on the labels, predict the other
image), switching images (predict only: the trained classifier is kept), and the
threshold preview. Times are the median of ``--repeats`` runs, in seconds.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from PIL import Image

from orangecontrib.deepimage.core.segment.synthetic import make_cells, sparse_labels
from orangecontrib.deepimage.core.segment.threshold import ThresholdParams
from orangecontrib.deepimage.segmentation import (PixelCache, TrainedClassifiers,
                                                  preview_classifier, preview_threshold)


class State:
    def is_interruption_requested(self) -> bool:
        return False


def median_seconds(job, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        job()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(side: int, repeats: int, folder: str) -> dict:
    paths = []
    for seed in range(2):
        cells = make_cells((side, side), count=max(side // 6, 10), seed=seed)
        path = os.path.join(folder, f"{side}-{seed}.png")
        Image.fromarray(cells.image).save(path)
        paths.append((path, cells.labels))
    pixels = PixelCache()
    for path, _ in paths:
        pixels.get(path)  # decoded once when the image is first shown
    labels = {paths[0][0]: sparse_labels(paths[0][1], 0.01)}
    other = paths[1][0]

    def stroke():  # a new classifier every time, as after a stroke
        preview_classifier(pixels, labels, "filters", other, None, State(),
                           trained=TrainedClassifiers())
    trained = TrainedClassifiers()
    preview_classifier(pixels, labels, "filters", other, None, State(), trained=trained)

    def switch():
        preview_classifier(pixels, labels, "filters", other, None, State(), trained=trained)

    def threshold():
        preview_threshold(ThresholdParams(), pixels, other, State())
    return {"stroke": median_seconds(stroke, repeats),
            "switch": median_seconds(switch, repeats),
            "threshold": median_seconds(threshold, repeats)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print("| image | stroke: train + predict (s) | switch image: predict (s) | "
          "threshold preview (s) |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for side in args.sides:
            times = measure(side, args.repeats, folder)
            print(f"| {side} x {side} | {times['stroke']:.2f} | {times['switch']:.2f} | "
                  f"{times['threshold']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
