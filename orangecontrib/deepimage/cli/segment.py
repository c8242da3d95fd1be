"""`deepimage segment` and `deepimage segment-train`: find, count and measure objects.

Registered with ``register(commands)``; the work is core.segment's (segment_paths,
ThresholdParams, PixelClassifier). Exit codes: 0 done, 1 no image could be
segmented, 2 wrong arguments or unusable input, 130 interrupted.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys

from .common import fail, warn

__all__ = ["register", "cmd_segment", "cmd_segment_train"]

_LABEL_EXTENSIONS = (".png", ".tif", ".tiff")


def register(commands) -> None:
    """Add the segment and segment-train sub-commands to the `deepimage` subparsers."""
    segment = commands.add_parser(
        "segment", help="find, count and measure objects (cells, nuclei, coins ...)",
        description="Find the objects in each image, by a threshold (no training) or a "
                    "pixel classifier trained with `deepimage segment-train`, and write one "
                    "row per object with its measurements (pixels; intensities in the "
                    "image's own units, e.g. a 16-bit TIFF's counts) to a CSV file. PATH is "
                    "image files or folders (searched recursively).")
    segment.add_argument("paths", nargs="+", metavar="PATH", help="images or folders")
    segment.add_argument("-o", "--output", metavar="FILE.csv",
                         help="write the objects, one row per object, to this CSV file")
    segment.add_argument("--method", choices=("threshold", "classifier"), default=None,
                         help="threshold (default) or classifier (needs --classifier)")
    segment.add_argument("--classifier", metavar="FILE",
                         help="a pixel classifier saved by `deepimage segment-train` or the "
                              "Segment Images widget (implies --method classifier)")
    segment.add_argument("--threshold", choices=("otsu", "li", "local"), default="otsu",
                         help="the threshold method (default otsu)")
    segment.add_argument("--diameter", metavar="MIN,MAX", default=None,
                         help="expected object diameter in pixels: smaller and larger objects "
                              "are dropped, and touching objects are split at this size")
    segment.add_argument("--dark", action="store_true",
                         help="dark objects on a light background (threshold method)")
    segment.add_argument("--no-background-correction", action="store_true",
                         help="do not subtract the smooth background (even illumination)")
    segment.add_argument("--no-split", action="store_true", help="do not split touching objects")
    segment.add_argument("--masks-out", metavar="DIR",
                         help="write one label image per input (0 background, 1..N objects; "
                              "16-bit PNG, or TIFF above 65535 objects) named after it")
    segment.add_argument("--crops-out", metavar="DIR",
                         help="write each object's bounding box as its own image")
    segment.add_argument("--json", action="store_true",
                         help='print a JSON list of {"path", "count", "mean_area", '
                              '"covered_fraction", "mask", "skipped"} per image')
    segment.add_argument("-q", "--quiet", action="store_true", help="no per-image lines")
    segment.set_defaults(run=cmd_segment)

    train = commands.add_parser(
        "segment-train", help="train a pixel classifier from label images",
        description="Train a pixel classifier (a random forest on pixel features) from images "
                    "and their label images: DIR holds, for each image, a PNG or TIFF of the "
                    "same name where 0 is unlabelled, 1 background and 2, 3 ... the kinds of "
                    "object (as ilastik exports them). Sparse scribbles or full masks both work.")
    train.add_argument("paths", nargs="+", metavar="IMAGES", help="images or folders")
    train.add_argument("--labels", required=True, metavar="DIR", help="the label images")
    train.add_argument("-o", "--output", required=True, metavar="FILE",
                       help="where to save the classifier (a .skops file)")
    train.add_argument("--features", choices=("filters", "deep", "both"), default="filters",
                       help="pixel features: filters (default; fast), deep (SqueezeNet's first "
                            "layers; textures) or both")
    train.add_argument("--trees", type=int, default=24, metavar="N",
                       help="trees in the random forest (default 24)")
    train.set_defaults(run=cmd_segment_train)


def _diameter(text: "str | None") -> "tuple[float, float] | None":
    if text is None:
        return None
    parts = text.replace(" ", "").split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"--diameter is MIN,MAX in pixels (e.g. 10,40), not {text!r}") from None
    if not 0 < low <= high:
        raise ValueError(f"--diameter needs 0 < MIN <= MAX, not {text!r}")
    return low, high


def _segmenter(args):
    from ..core.segment import PixelClassifier, ThresholdParams

    diameter = _diameter(args.diameter)
    method = args.method or ("classifier" if args.classifier else "threshold")
    if method == "classifier":
        if not args.classifier:
            raise ValueError("--method classifier needs --classifier FILE")
        return PixelClassifier.load(args.classifier), diameter
    return ThresholdParams(method=args.threshold, dark=args.dark, diameter=diameter,
                           correct_background=not args.no_background_correction,
                           split_touching=not args.no_split), diameter


class _ObjectsFile:
    """Rows of objects streamed to a CSV file; the columns are the first measured image's."""

    def __init__(self, path: str):
        self.file = open(path, "w", newline="", encoding="utf-8")
        self.writer = None
        self.columns: list[str] = []
        self.rows = 0
        self.warned = False

    def add(self, source: str, objects: dict) -> None:
        if self.writer is None:
            self.columns = list(objects)
            self.writer = csv.writer(self.file)
            self.writer.writerow(["image"] + self.columns)
        extra = set(objects) - set(self.columns)
        if extra and not self.warned:
            warn(f"{source} has columns the first image has not ({', '.join(sorted(extra))}); "
                 f"they are left out")
            self.warned = True
        values = [objects[c].tolist() if c in objects else [""] * len(objects["id"])
                  for c in self.columns]
        for row in zip(*values):
            self.writer.writerow([source, *row])
        self.rows += len(objects["id"])

    def close(self) -> None:
        if self.writer is None:  # no image had a table: the header of the shape columns
            from ..core.segment.objects import SHAPE_COLUMNS
            csv.writer(self.file).writerow(["image", *SHAPE_COLUMNS])
        self.file.close()


def cmd_segment(args: argparse.Namespace) -> int:
    from ..core.images import find_images
    from ..core.segment import SegmenterFileError

    if not args.output and not args.json and not args.masks_out and not args.crops_out:
        return fail("nothing to do: give -o FILE.csv, --json, --masks-out or --crops-out")
    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        return fail(f"no such file or folder: {', '.join(missing)}")
    try:
        segmenter, diameter = _segmenter(args)
    except (SegmenterFileError, ValueError) as exc:
        return fail(str(exc))
    sources = find_images(args.paths)
    if not sources:
        return fail("no images found in " + ", ".join(args.paths), 1)
    return _run_segment(args, sources, segmenter, diameter)


def _run_segment(args, sources, segmenter, diameter) -> int:
    from ..core.segment import segment_paths

    table = _ObjectsFile(args.output) if args.output else None
    report, done = [], 0
    try:
        for result in segment_paths(sources, segmenter, args.masks_out, args.crops_out,
                                    split_touching=not args.no_split, diameter=diameter):
            if result.skipped_reason is not None:
                warn(f"skipped {result.path}: {result.skipped_reason}")
                report.append({"path": result.path, "skipped": result.skipped_reason})
                continue
            done += 1
            if table is not None:
                table.add(result.path, result.objects)
            summary = result.summary
            report.append({"path": result.path, "count": summary.count,
                           "mean_area": summary.mean_area,
                           "covered_fraction": summary.covered_fraction,
                           "mask": result.mask_path, "skipped": None})
            if not args.quiet and not args.json:
                print(f"{result.path}: {summary.count} objects, mean area "
                      f"{summary.mean_area:.1f} px, {100 * summary.covered_fraction:.1f}% covered",
                      file=sys.stderr)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    finally:
        if table is not None:
            table.close()
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    if table is not None and not args.quiet:
        print(f"{table.rows} objects from {done} of {len(sources)} images -> {args.output}",
              file=sys.stderr)
    return 0 if done else 1


def _label_file(folder: str, image: str) -> "str | None":
    stem = os.path.splitext(os.path.basename(image))[0]
    for ext in _LABEL_EXTENSIONS:
        for candidate in (stem + ext, stem + ext.upper()):
            path = os.path.join(folder, candidate)
            if os.path.isfile(path):
                return path
    return None


def _training_pairs(args) -> "tuple[list, list, list]":
    """(images, label images, label file names); ValueError with what is wrong."""
    from ..core.images import ImageError, find_images
    from ..core.segment import read_label_image, read_original

    images, labels, names = [], [], []
    for source in find_images(args.paths):
        label_path = _label_file(args.labels, source)
        if label_path is None:
            warn(f"{source} has no label image in {args.labels}; left out")
            continue
        try:
            images.append(read_original(source))
        except ImageError as exc:
            raise ValueError(f"{source}: {exc}") from None
        labels.append(read_label_image(label_path))
        names.append(label_path)
    if not images:
        raise ValueError(f"no image has a label image of the same name in {args.labels} "
                         f"(PNG or TIFF)")
    return images, labels, names


def cmd_segment_train(args: argparse.Namespace) -> int:
    from ..core.segment import LabelError, MaskError, PixelClassifier
    from ..core.weights import WeightsUnavailable

    if not os.path.isdir(args.labels):
        return fail(f"--labels {args.labels} is not a folder")
    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        return fail(f"no such file or folder: {', '.join(missing)}")
    if args.trees < 1:
        return fail("--trees must be at least 1")
    try:
        images, labels, names = _training_pairs(args)
        model = PixelClassifier(n_estimators=args.trees).fit(images, labels, args.features,
                                                             names=names)
        model.save(args.output)
    except (LabelError, MaskError, ValueError, WeightsUnavailable) as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"could not write {args.output} ({exc})")
    print(f"trained on {len(images)} images ({', '.join(model.class_names)}; "
          f"{model.features} features) -> {args.output}", file=sys.stderr)
    return 0
