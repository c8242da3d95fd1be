"""Segmentation benchmarks (issue 22): accuracy on generated images with known
masks, speed of the pixel classifier, peak memory of a 100-megapixel 16-bit TIFF.

    python benchmarks/segment_bench.py accuracy   # object F1: classifier vs threshold
    python benchmarks/segment_bench.py texture    # pixel accuracy: deep vs filter features
    python benchmarks/segment_bench.py speed      # 2048 x 2048 and ~1 MP, wall and CPU s
    python benchmarks/segment_bench.py many       # 100,000 objects in one image
    python benchmarks/segment_bench.py memory     # VmHWM of a subprocess, 100 MP TIFF
    python benchmarks/segment_bench.py all

Parameters of the methods were chosen on the "tuning" seeds; the "confirm" seeds were
not looked at while choosing. Each part prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

from orangecontrib.deepimage.core.segment import (PixelClassifier, ThresholdParams, object_f1,
                                                  pixel_accuracy, segment_threshold)
from orangecontrib.deepimage.core.segment.synthetic import (make_cells, make_texture_mosaic,
                                                            sparse_labels)

TUNING_SEEDS = range(1, 9)       # looked at while choosing parameters
CONFIRM_SEEDS = range(100, 112)  # not looked at
CELL_SHAPE = (256, 256)


def _classifier(features: str = "filters") -> PixelClassifier:
    """Trained on two generated cell images (seeds 1 and 2), 5% of pixels labelled."""
    train = [make_cells(CELL_SHAPE, seed=seed, gradient=1.0) for seed in (1, 2)]
    labels = [sparse_labels(s.labels, 0.05, seed=i) for i, s in enumerate(train)]
    return PixelClassifier().fit([s.image for s in train], labels, features=features)


def accuracy() -> None:
    """Object F1 at IoU 0.5 on held-out cell images with uneven illumination."""
    model = _classifier()
    methods = {
        "pixel classifier (filters), trained on 2 images": lambda im: model.segment(im)[0],
        "threshold: global Otsu + watershed, no background correction":
            lambda im: segment_threshold(im, ThresholdParams(correct_background=False)),
        "threshold: Otsu + watershed, background corrected (default)":
            lambda im: segment_threshold(im, ThresholdParams()),
        "threshold: local, background corrected, diameter 10-26":
            lambda im: segment_threshold(im, ThresholdParams(method="local", diameter=(10, 26))),
    }
    print("| method | F1, tuning seeds 3-8 | F1, confirm seeds 100-111 |")
    print("|---|---:|---:|")
    for name, method in methods.items():
        scores = []
        for seeds in (range(3, 9), CONFIRM_SEEDS):
            f1 = [object_f1(s.labels, method(s.image))
                  for s in (make_cells(CELL_SHAPE, seed=seed, gradient=1.0) for seed in seeds)]
            scores.append(f"{np.mean(f1):.3f} (min {np.min(f1):.3f})")
        print(f"| {name} | {scores[0]} | {scores[1]} |", flush=True)


def texture() -> None:
    """Pixel accuracy on texture mosaics: trained on one mosaic, tested on others."""
    print("| textures | features | accuracy, tuning seeds 1-3 | accuracy, confirm seeds 10-15 |")
    print("|---:|---|---:|---:|")
    for count in (2, 3):
        train = make_texture_mosaic(textures=count, seed=0)
        for features in ("filters", "deep", "both"):
            model = PixelClassifier().fit([train.image], [train.labels], features=features)
            scores = []
            for seeds in (range(1, 4), range(10, 16)):
                acc = [pixel_accuracy(t.labels, model.predict(t.image))
                       for t in (make_texture_mosaic(textures=count, seed=s) for s in seeds)]
                scores.append(f"{np.mean(acc):.3f} (min {np.min(acc):.3f})")
            print(f"| {count} | {features} | {scores[0]} | {scores[1]} |", flush=True)


def _timed(function, repeats: int = 3) -> tuple[float, float]:
    """Best wall seconds and CPU seconds (all threads) of ``repeats`` calls."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def speed() -> None:
    """Seconds of the trained classifier on 2048 x 2048 and on ~1 MP (a preview)."""
    model = _classifier()
    big = make_cells((2048, 2048), 2500, seed=5, gradient=1.0).image
    preview = make_cells((1024, 1024), 620, seed=6, gradient=1.0).image
    model.segment(preview[:256, :256])  # warm-up: imports
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| image | step | best wall s | its CPU s |")
    print("|---|---|---:|---:|")
    for name, image in (("2048 x 2048 (4.2 MP)", big), ("1024 x 1024 (1 MP, preview)", preview)):
        for step, function in (("class map (predict)", lambda: model.predict(image)),
                               ("objects (segment: predict + label + split)",
                                lambda: model.segment(image)),
                               ("class map, every pixel (exact=True)",
                                lambda: model.predict(image, exact=True))):
            wall, cpu = _timed(function)
            print(f"| {name} | {step} | {wall:.2f} | {cpu:.2f} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def many() -> None:
    """100,000 objects in one image: a grid of 3 x 3 dots, segmented and measured."""
    from orangecontrib.deepimage.core.segment import measure_objects, summarise

    side = 6 * 317
    image = np.full((side, side), 100, np.uint16)
    for dy in range(3):
        for dx in range(3):
            image[2 + dy::6, 2 + dx::6] = 3000
    segment_threshold(image[:60, :60])  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    labels = segment_threshold(image, ThresholdParams(correct_background=False))
    middle = (time.perf_counter() - wall, time.process_time() - cpu)
    objects = measure_objects(labels, image)
    total = (time.perf_counter() - wall, time.process_time() - cpu)
    print("| image | objects | segment wall / CPU s | + measure wall / CPU s |")
    print("|---|---:|---:|---:|")
    print(f"| {side} x {side} | {summarise(labels).count} ({len(objects['id'])} rows) | "
          f"{middle[0]:.1f} / {middle[1]:.1f} | {total[0]:.1f} / {total[1]:.1f} |")


CHILD = textwrap.dedent(r'''
    import sys, time
    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024  # MiB
    from orangecontrib.deepimage.core.segment import PixelClassifier, ThresholdParams, segment_paths
    segmenter = PixelClassifier.load(sys.argv[2]) if sys.argv[2] != "threshold" else ThresholdParams()
    base = status("VmRSS")
    start = time.perf_counter()
    (result,) = segment_paths([sys.argv[1]], segmenter)
    seconds = time.perf_counter() - start
    print(f"{result.skipped_reason or result.summary.count} {seconds:.1f} {base:.0f} {status('VmHWM'):.0f}")
''')


def _big_tiff(folder: str, side: int = 10_000) -> str:
    """A side x side uint16 TIFF of generated cells (a 2048 x 2048 field repeated)."""
    import tifffile

    field = make_cells((2048, 2048), 2500, seed=9, gradient=0.3).image
    reps = -(-side // 2048)
    path = os.path.join(folder, f"cells_{side}.tif")
    tifffile.imwrite(path, np.tile(field, (reps, reps))[:side, :side])
    return path


def memory(classifier: bool = False) -> None:
    """Peak RSS (VmHWM) of a fresh process segmenting one 100-megapixel 16-bit TIFF."""
    with tempfile.TemporaryDirectory(prefix="segment-bench-") as folder:
        path = _big_tiff(folder)
        segmenters = ["threshold"]
        if classifier:
            model_path = os.path.join(folder, "cells.skops")
            _classifier().save(model_path)
            segmenters.append(model_path)
        print(f"file: {os.path.getsize(path) / 2**20:.0f} MiB, 10000 x 10000 uint16")
        print("| segmenter | objects | seconds | RSS after imports (MiB) | peak RSS VmHWM (MiB) |")
        print("|---|---:|---:|---:|---:|")
        for segmenter in segmenters:
            done = subprocess.run([sys.executable, "-c", CHILD, path, segmenter],
                                  capture_output=True, text=True, check=True)
            count, seconds, base, peak = done.stdout.split()
            name = "threshold (Otsu, background corrected)" if segmenter == "threshold" \
                else "pixel classifier (filters)"
            print(f"| {name} | {count} | {seconds} | {base} | {peak} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("accuracy", "texture", "speed", "many", "memory", "all"))
    parser.add_argument("--classifier-memory", action="store_true",
                        help="also measure the classifier on the 100 MP TIFF (slow)")
    args = parser.parse_args()
    parts = ("accuracy", "texture", "speed", "many", "memory") if args.part == "all" \
        else (args.part,)
    for part in parts:
        print(f"\n## {part}\n", flush=True)
        if part == "memory":
            memory(args.classifier_memory)
        else:
            globals()[part]()


if __name__ == "__main__":
    main()
