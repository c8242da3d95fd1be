#!/usr/bin/env python3
"""Lesson 1: which handwritten digits look alike? Group images without telling the
computer what they are.

    python tutorials/lesson1_clustering.py
    python tutorials/lesson1_clustering.py --per-class 10 --clusters 5
    python tutorials/lesson1_clustering.py --data my_images     # any folder of images
    python -m orangecontrib.deepimage.tutorials.lesson1_clustering

The same steps as the workflow lesson1_clustering.ows, without a screen:

1. Import Images reads the folder (tutorials/digits, written first if missing); the
   subfolder of each image (0, 1, ..., 9) is its class. The clustering does not use the
   class: it is only there to check the groups afterwards.
2. Image Embedder turns every image into 512 numbers with SqueezeNet, on this computer.
3. Distances measures how different every two images' numbers are (cosine distance).
4. Hierarchical Clustering (Ward linkage) joins the closest images into groups, then the
   groups into bigger groups; cut into ten groups ("Top N: 10"), each group is listed
   with the digits in it.
5. MDS places the images on a plane so that close images lie close together; the
   script says how often an image's nearest neighbour on that plane is the same digit.

The widgets call the same functions as this script (lesson_steps, and Orange's own
distance, clustering and projection code); the settings below are the workflow's.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from Orange.clustering.hierarchical import dist_matrix_linkage, leaves, top_clusters, \
    tree_from_linkage
from Orange.data import Table
from Orange.distance import Cosine
from Orange.misc import DistMatrix
from Orange.projection import MDS

from orangecontrib.deepimage.tutorials import DIGITS_DIR
from orangecontrib.deepimage.tutorials.lesson_steps import embed_images, import_images

# --- the lesson's settings: the same as in lesson1_clustering.ows -----------------------
CLUSTERS = 10  # Hierarchical Clustering: Selection "Top N: 10"
LINKAGE = "ward"  # Hierarchical Clustering: Linkage "Ward"


@dataclass(frozen=True)
class Cluster:
    """One group of the dendrogram's cut, and the digits (classes) in it."""

    rows: "tuple[int, ...]"  # rows of the embedded table
    counts: "tuple[tuple[str, int], ...]"  # (class, how many), most common first

    @property
    def majority(self) -> str:
        return self.counts[0][0]

    @property
    def purity(self) -> float:
        """The share of the group that is its most common class."""
        return self.counts[0][1] / len(self.rows)


@dataclass(frozen=True)
class LessonResult:
    data: Table  # Image Embedder's output: the images with their 512 numbers
    distances: DistMatrix  # Distances' output
    clusters: "tuple[Cluster, ...]"  # Hierarchical Clustering's Top-N groups, biggest first
    mds: np.ndarray  # MDS's positions, one (x, y) per image
    neighbour_agreement: float  # share of images whose nearest MDS neighbour has its class
    embedding_agreement: float  # the same for the nearest image by cosine distance
    seconds: "dict[str, float]"


def cosine_distances(data: Table) -> DistMatrix:
    """Distances: cosine distance between every two images' numbers (rows)."""
    return Cosine(data, axis=1)


def cluster(distances: DistMatrix, data: Table, k: int = CLUSTERS) -> "list[Cluster]":
    """Hierarchical Clustering: Ward linkage, cut into the top ``k`` groups."""
    tree = tree_from_linkage(dist_matrix_linkage(distances, linkage=LINKAGE))
    classes = data.domain.class_var
    groups = []
    for node in top_clusters(tree, k):
        rows = tuple(sorted(leaf.value.index for leaf in leaves(node)))
        names = [classes.str_val(data.Y[row]) for row in rows]
        groups.append(Cluster(rows, tuple(Counter(names).most_common())))
    return sorted(groups, key=lambda group: -len(group.rows))


def project(distances: DistMatrix) -> np.ndarray:
    """MDS: two numbers per image whose distances on a plane follow the cosine distances."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn's renamed arguments
        return MDS(dissimilarity="precomputed", random_state=0, n_init=1, init_type="PCA")(
            np.asarray(distances)).embedding_


def plane_distances(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[:, None, :] - points[None, :, :], axis=2)


def neighbour_agreement(gaps: np.ndarray, data: Table) -> float:
    """How often an image's nearest other image (by the distances ``gaps``) is the same
    class."""
    if len(gaps) < 2:
        return float("nan")
    gaps = np.array(gaps, dtype=float)
    np.fill_diagonal(gaps, np.inf)
    return float(np.mean(data.Y[gaps.argmin(axis=1)] == data.Y))


def run(folder: str = DIGITS_DIR, per_class: Optional[int] = None,
        clusters: int = CLUSTERS) -> LessonResult:
    """The whole lesson; each step is timed."""
    seconds = {}
    start = time.perf_counter()
    data = import_images(folder, per_class)
    seconds["import"] = time.perf_counter() - start
    start = time.perf_counter()
    embedded = embed_images(data).embedded
    seconds["embed"] = time.perf_counter() - start
    start = time.perf_counter()
    distances = cosine_distances(embedded)
    groups = cluster(distances, embedded, clusters)
    seconds["cluster"] = time.perf_counter() - start
    start = time.perf_counter()
    points = project(distances)
    seconds["mds"] = time.perf_counter() - start
    return LessonResult(embedded, distances, tuple(groups), points,
                        neighbour_agreement(plane_distances(points), embedded),
                        neighbour_agreement(distances, embedded), seconds)


def report(result: LessonResult) -> str:
    """The groups as a table a student can read, and what MDS shows."""
    lines = [f"\nHierarchical clustering (Ward, cosine distances) cut into "
             f"{len(result.clusters)} groups:",
             f"{'group':>5}  {'images':>6}  {'mostly':>6}  {'share':>5}  digits in it"]
    for number, group in enumerate(result.clusters, 1):
        inside = ", ".join(f"{name}: {count}" for name, count in group.counts)
        lines.append(f"{number:>5}  {len(group.rows):>6}  {group.majority:>6}  "
                     f"{group.purity:>5.0%}  {inside}")
    mixed = sum(len(g.rows) - g.counts[0][1] for g in result.clusters)
    lines.append(f"{mixed} of {len(result.data)} images are in a group where most "
                 "images are another digit.")
    lines.append(f"\nMDS: for {result.neighbour_agreement:.0%} of the images, the nearest "
                 "image on the plane is the same digit; by all 512 numbers (cosine "
                 f"distance) it is {result.embedding_agreement:.0%}. Two numbers per image "
                 "cannot keep every distance.")
    lines.append("Time: " + ", ".join(f"{step} {s:.1f} s" for step, s in result.seconds.items()))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DIGITS_DIR,
                        help="folder with one subfolder of images per class "
                             "(default: tutorials/digits, written when missing)")
    parser.add_argument("--per-class", type=int, default=None,
                        help="use only the first N images of each class")
    parser.add_argument("--clusters", type=int, default=CLUSTERS,
                        help=f"groups to cut the dendrogram into (default {CLUSTERS})")
    args = parser.parse_args(argv)
    print(report(run(args.data, args.per_class, args.clusters)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
