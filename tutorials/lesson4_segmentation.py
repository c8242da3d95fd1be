#!/usr/bin/env python3
"""Lesson 4: counting and measuring cells, then grouping the cells by how they look.

    python tutorials/lesson4_segmentation.py
    python tutorials/lesson4_segmentation.py --data my_cells --clusters 3
    python -m orangecontrib.deepimage.tutorials.lesson4_segmentation

The same steps as the workflow lesson4_segmentation.ows, without a screen:

1. Import Images reads the folder (tutorials/cells, written first if missing): six
   fields of view of fluorescent cells, three from culture A, three from culture B.
2. Segment Images finds the cells with a threshold (Otsu, after correcting the uneven
   illumination; cells 12 to 26 pixels across; touching cells split): it counts them,
   measures each (area, perimeter, shape, brightness in the camera's own units) and
   crops each one.
3. Image Embedder turns every cell's crop into 512 numbers with SqueezeNet.
4. Distances (cosine) and Hierarchical Clustering (Ward) group the cells, here into
   two groups; the script says how well the groups follow the two cultures, which the
   clustering was never told.

The widgets call the same functions as this script (segmentation.run_segmentation,
lesson_steps, Orange's distances and clustering); the settings are the workflow's.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from Orange.clustering.hierarchical import dist_matrix_linkage, leaves, top_clusters, \
    tree_from_linkage
from Orange.data import Table
from Orange.distance import Cosine

from orangecontrib.deepimage.core.segment.threshold import ThresholdParams
from orangecontrib.deepimage.imports import run_import
from orangecontrib.deepimage.segmentation import SegmentationResult, run_segmentation
from orangecontrib.deepimage.segmentation import summary as segmentation_summary
from orangecontrib.deepimage.tutorials import TUTORIALS_DIR
from orangecontrib.deepimage.tutorials.lesson_steps import PrintedState, embed_images

CELLS_DIR = os.path.join(TUTORIALS_DIR, "cells")
# --- the lesson's settings: the same as in lesson4_segmentation.ows ---------------------
THRESHOLD = ThresholdParams(method="otsu", dark=False, diameter=(12, 26),
                            correct_background=True, split_touching=True, fill_holes=True)
CLUSTERS = 2  # Hierarchical Clustering: Selection "Top N: 2"


@dataclass(frozen=True)
class LessonResult:
    segmented: SegmentationResult  # Segment Images' outputs (Objects, Images)
    embedded: Table  # Image Embedder's output: the cells with their 512 numbers
    groups: "tuple[tuple[tuple[str, int], ...], ...]"  # per group: (culture, cells)
    agreement: float  # share of cells whose group is mostly their own culture
    seconds: "dict[str, float]"


def culture(source_image: str) -> str:
    """'cultureA-2' -> 'A' (the lesson's file names); other names are kept whole."""
    name = source_image.split("-")[0]
    return name[len("culture"):] if name.startswith("culture") else source_image


def import_cells(folder: str) -> Table:
    """Import Images: the fields of view (the lesson's are written when missing)."""
    if not os.path.isdir(folder) and os.path.abspath(folder) == os.path.abspath(CELLS_DIR):
        from orangecontrib.deepimage.tutorials.make_cells import write_cells
        write_cells(folder)
    state = PrintedState("Import Images")
    data = run_import(folder, state).data
    if data is None:
        raise SystemExit(f"{folder} has no images.")
    state.done(f"{len(data)} images")
    return data


def segment(data: Table, crops_dir: str) -> SegmentationResult:
    """Segment Images with the workflow's threshold settings."""
    state = PrintedState("Segment Images")
    result = run_segmentation(data, THRESHOLD, crops_dir, state)
    state.done(segmentation_summary(result))
    return result


def cluster(embedded: Table, k: int = CLUSTERS) -> "list[list[int]]":
    """Hierarchical Clustering: Ward linkage on cosine distances, the top ``k`` groups."""
    tree = tree_from_linkage(dist_matrix_linkage(Cosine(embedded, axis=1), linkage="ward"))
    return [sorted(leaf.value.index for leaf in leaves(node))
            for node in top_clusters(tree, k)]


def run(folder: str = CELLS_DIR, clusters: int = CLUSTERS,
        crops_dir: Optional[str] = None) -> LessonResult:
    """The whole lesson; crops go to ``crops_dir`` (a new temporary folder if None)."""
    seconds = {}
    start = time.perf_counter()
    data = import_cells(folder)
    crops_dir = crops_dir or tempfile.mkdtemp(prefix="lesson4-")
    segmented = segment(data, crops_dir)
    seconds["segment"] = time.perf_counter() - start
    if segmented.objects is None:
        raise SystemExit("Segment Images found no cells.")
    start = time.perf_counter()
    embedded = embed_images(segmented.objects).embedded
    seconds["embed"] = time.perf_counter() - start
    start = time.perf_counter()
    cultures = [culture(name) for name in embedded.get_column("source image")]
    groups, agreeing = [], 0
    for rows in sorted(cluster(embedded, clusters), key=len, reverse=True):
        counts = Counter(cultures[row] for row in rows).most_common()
        groups.append(tuple(counts))
        agreeing += counts[0][1]
    seconds["cluster"] = time.perf_counter() - start
    return LessonResult(segmented, embedded, tuple(groups), agreeing / len(embedded),
                        seconds)


def report(result: LessonResult) -> str:
    """Cells per image, their sizes, and the groups, as a student reads them."""
    images = result.segmented.images
    lines = ["\nCells found per image:",
             f"{'image':>16}  {'cells':>5}  {'mean area (px²)':>15}  {'covered':>7}"]
    for row in range(len(images)):
        lines.append(f"{images[row]['image name'].value:>16}  "
                     f"{int(images[row]['objects']):>5}  "
                     f"{float(images[row]['mean area']):>15.0f}  "
                     f"{float(images[row]['covered fraction']):>7.1%}")
    lines.append(f"\nHierarchical clustering of {len(result.embedded)} cells (Ward, cosine "
                 f"distances) cut into {len(result.groups)} groups:")
    for number, counts in enumerate(result.groups, 1):
        inside = ", ".join(f"culture {name}: {count}" for name, count in counts)
        lines.append(f"  group {number}: {sum(c for _, c in counts)} cells ({inside})")
    lines.append(f"{result.agreement:.0%} of the cells are in a group made mostly of their "
                 "own culture; the clustering never saw the file names.")
    lines.append("Time: " + ", ".join(f"{step} {s:.1f} s" for step, s in result.seconds.items()))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=CELLS_DIR,
                        help="folder of images (default: tutorials/cells, written when "
                             "missing)")
    parser.add_argument("--clusters", type=int, default=CLUSTERS,
                        help=f"groups to cut the dendrogram into (default {CLUSTERS})")
    args = parser.parse_args(argv)
    print(report(run(args.data, args.clusters)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
