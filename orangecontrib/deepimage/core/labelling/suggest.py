"""Which images to label next.

- "diverse": picks that cover the data. The rows are clustered (k-means on
  normalised embeddings projected on their main principal components) into as many
  clusters as there will be labels; each cluster offers its most typical image (the
  one nearest the centre), and the offers are taken in a k-centre order weighted by
  the cluster's size: far from everything labelled or picked, from large groups
  first. So the first dozen labels meet every kind of image, also when the user
  labels one image at a time (the 500 digits of lesson 5: all ten digits within
  the first 20 labels; before, the largest clusters first, 30 labels met nine).
- "uncertain": the images the quick model is least sure about (smallest margin
  between its two most probable classes), kept diverse: the 10 n least certain
  candidates are clustered into `n` groups and each group gives its most typical image
  (the weighted-k-means idea of Zhdanov, 2019, without the weights).
- "auto": "diverse" while the labels are few or of fewer than two classes, then
  "uncertain".
- "random": a uniform sample (the baseline).
"""
from __future__ import annotations

import warnings
from typing import Hashable, Sequence

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.extmath import randomized_svd

from .inputs import LabellingError, Prepared, single_threaded, prepare
from .quickmodel import fit_prepared

__all__ = ["STRATEGIES", "suggest_next", "suggest_prepared", "auto_strategy"]

STRATEGIES = ("auto", "diverse", "uncertain", "random")

#: "auto" stays diverse until this many labels exist (and at least two classes).
AUTO_MIN_LABELS = 30
#: "uncertain" clusters this many times n of the least certain candidates.
CANDIDATE_FACTOR = 10
#: Embeddings are projected on this many principal components for the geometry.
GEOMETRY_DIMENSIONS = 64
#: ... fitted on at most this many rows.
PCA_SAMPLE = 3000


@single_threaded
def suggest_next(embeddings: object, labels: Sequence[Hashable | None], n: int,
                 strategy: str = "auto", seed: int = 0) -> list:
    """Indices of up to `n` unlabelled rows to label next, most useful first.

    `labels` holds a label or None (unlabelled) per row of `embeddings`. Rows with
    NaN embeddings and labelled rows are never returned; fewer than `n` come back
    when fewer unlabelled rows remain. The same inputs and seed give the same picks."""
    if strategy not in STRATEGIES:
        raise LabellingError(f"unknown strategy {strategy!r}: choose one of "
                             + ", ".join(STRATEGIES))
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise LabellingError(f"n must be a whole number of images, 0 or more, not {n!r}")
    return suggest_prepared(prepare(embeddings, labels), int(n), strategy, seed)


def auto_strategy(prepared: Prepared) -> str:
    """What "auto" does for these labels: "diverse" or "uncertain"."""
    counts = prepared.class_counts()
    if (counts > 0).sum() < 2 or counts.sum() < AUTO_MIN_LABELS:
        return "diverse"
    return "uncertain"


def suggest_prepared(prepared: Prepared, n: int, strategy: str, seed: int) -> list:
    """`suggest_next` on inputs already prepared."""
    candidates = np.flatnonzero(prepared.candidates)
    n = min(n, len(candidates))
    if n == 0:
        return []
    if strategy == "random":
        rng = np.random.default_rng(seed)
        return [int(i) for i in rng.choice(candidates, n, replace=False)]
    if strategy == "auto":
        strategy = auto_strategy(prepared)
    if strategy == "uncertain" and (prepared.class_counts() > 0).sum() < 2:
        strategy = "diverse"        # no model without two classes
    if strategy == "diverse":
        return diverse(project(prepared, seed), prepared, candidates, n, seed)
    return uncertain(prepared, candidates, n, seed)


def normalised(prepared: Prepared, rows: np.ndarray) -> np.ndarray:
    """The given rows centred (on all valid rows) and scaled to unit length, float32:
    the cosine geometry in which embeddings are compared."""
    X = prepared.X[rows].astype(np.float32)
    X -= prepared.moments[0].astype(np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def project(prepared: Prepared, seed: int) -> np.ndarray:
    """Valid rows, normalised and projected on their main principal components
    (fitted on at most PCA_SAMPLE rows); invalid rows are zero. Computed without a
    normalised copy of the whole matrix, so it stays fast on 20,000 images."""
    rows = np.flatnonzero(prepared.valid)
    dims = min(GEOMETRY_DIMENSIONS, len(rows), prepared.X.shape[1])
    out = np.zeros((len(prepared.y), max(dims, 1)))
    if not len(rows) or dims < 1:
        return out
    if len(rows) > PCA_SAMPLE:
        sample = np.random.default_rng(seed).choice(rows, PCA_SAMPLE, replace=False)
    else:
        sample = rows
    _, _, components = randomized_svd(normalised(prepared, sample), dims, n_iter=3,
                                      random_state=seed)
    mean = prepared.moments[0]
    X = prepared.X if len(rows) == len(prepared.X) else prepared.X[rows]
    scores = X @ components.T.astype(X.dtype) - (mean @ components.T)
    squares = np.einsum("ij,ij->i", X, X) - 2 * (X @ mean.astype(X.dtype)) + mean @ mean
    norms = np.sqrt(np.maximum(squares, 0.0))[:, None]
    out[rows] = scores / np.where(norms > 1e-12, norms, 1.0)
    return out


def kmeans(points: np.ndarray, k: int, seed: int) -> tuple:
    """Labels and centres of k-means (mini-batch on many points, for speed). Ten
    starts while k is small: with one, k-means often merges two small clusters and
    splits a large one, and the first picks miss a kind of image."""
    k = max(1, min(k, len(points)))
    if len(points) > 5000:
        model = MiniBatchKMeans(k, random_state=seed, n_init=1, batch_size=2048)
    else:
        model = KMeans(k, random_state=seed, n_init=10 if k <= 50 else 3)
    with warnings.catch_warnings():   # identical rows: fewer distinct clusters than k
        warnings.simplefilter("ignore", ConvergenceWarning)
        assignment = model.fit_predict(points)
    return assignment, model.cluster_centers_


def diverse(geometry: np.ndarray, prepared: Prepared, candidates: np.ndarray, n: int,
            seed: int) -> list:
    """Typical images of large groups, far from everything labelled.

    The valid rows are clustered into labels + n clusters; each cluster offers its most
    typical unlabelled member (nearest the centre). Then, greedily, the offer with the
    largest sqrt(cluster size) * (distance to the nearest labelled or already picked
    image)^2 is picked (a k-centre order weighted by size), so the first picks of a
    list meet different kinds of image even when the user labels only the first one
    and asks again."""
    offers, sizes = cluster_offers(geometry, prepared, n, seed)
    picks = []
    if len(offers):
        points = geometry[offers]
        nearest = distance_to(points, geometry[np.flatnonzero(prepared.usable)],
                              geometry[prepared.valid].mean(axis=0))
        weight = np.sqrt(sizes)
        for _ in range(min(n, len(offers))):
            best = int(np.argmax(np.where(nearest >= 0, weight * nearest ** 2, -1.0)))
            picks.append(int(offers[best]))
            nearest = np.minimum(nearest, np.linalg.norm(points - points[best], axis=1))
            nearest[best] = -1.0
    if len(picks) == n:
        return picks
    return picks + farthest_first(geometry, prepared, candidates, n - len(picks), picks)


def cluster_offers(geometry: np.ndarray, prepared: Prepared, n: int, seed: int) -> tuple:
    """(rows, cluster sizes) of the most typical unlabelled member of each of the
    labels + n k-means clusters of the valid rows (clusters of labelled rows only
    offer nothing)."""
    rows = np.flatnonzero(prepared.valid)
    labelled = prepared.labelled[rows]
    assignment, centres = kmeans(geometry[rows], int(labelled.sum()) + n, seed)
    sizes = np.bincount(assignment, minlength=len(centres))
    distance = np.linalg.norm(geometry[rows] - centres[assignment], axis=1)
    offers, offer_sizes = [], []
    for cluster in range(len(centres)):
        members = np.flatnonzero((assignment == cluster) & ~labelled)
        if len(members):
            offers.append(int(rows[members[np.argmin(distance[members])]]))
            offer_sizes.append(float(sizes[cluster]))
    return np.array(offers, int), np.array(offer_sizes)


def distance_to(points: np.ndarray, anchors: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Each point's distance to its nearest anchor (to the centre when there are none),
    in chunks of anchors (no points x anchors x dimensions array)."""
    if not len(anchors):
        return np.linalg.norm(points - centre, axis=1)
    nearest = np.full(len(points), np.inf)
    squares = np.einsum("ij,ij->i", points, points)
    for start in range(0, len(anchors), 256):
        chunk = anchors[start:start + 256]
        d2 = squares[:, None] - 2 * points @ chunk.T + np.einsum("ij,ij->i", chunk, chunk)
        nearest = np.minimum(nearest, d2.min(axis=1))
    return np.sqrt(np.maximum(nearest, 0.0))


def farthest_first(geometry: np.ndarray, prepared: Prepared, candidates: np.ndarray,
                   n: int, chosen: list) -> list:
    """k-centre greedy: candidates farthest from everything labelled or chosen."""
    anchors = np.concatenate([np.flatnonzero(prepared.usable), chosen]).astype(int)
    pool = np.setdiff1d(candidates, chosen)
    if not len(pool) or n <= 0:
        return []
    points = geometry[pool]
    if len(anchors):
        nearest = np.min([np.linalg.norm(points - geometry[a], axis=1) for a in anchors],
                         axis=0)
    else:
        nearest = np.linalg.norm(points - points.mean(axis=0), axis=1)
    picks = []
    for _ in range(min(n, len(pool))):
        best = int(np.argmax(nearest))
        picks.append(int(pool[best]))
        nearest = np.minimum(nearest, np.linalg.norm(points - points[best], axis=1))
        nearest[best] = -1.0
    return picks


def margins(prepared: Prepared, candidates: np.ndarray, seed: int) -> np.ndarray:
    """Top-two probability margin of the quick model on the candidates (0 = unsure)."""
    model = fit_prepared(prepared, np.flatnonzero(prepared.usable), seed=seed)
    proba = model.predict_proba(prepared.X[candidates])
    top = np.sort(proba, axis=1)[:, -2:]
    return top[:, 1] - top[:, 0]


def uncertain(prepared: Prepared, candidates: np.ndarray, n: int, seed: int) -> list:
    """The CANDIDATE_FACTOR * n least certain candidates are clustered into n groups
    and each group gives its most typical member (nearest the centre), ordered by
    margin; so a batch never spends several labels on near-copies."""
    margin = margins(prepared, candidates, seed)
    order = np.argsort(margin, kind="stable")
    pool = order[:min(len(order), CANDIDATE_FACTOR * n)]
    if len(pool) <= n:
        return [int(candidates[i]) for i in pool]
    points = normalised(prepared, candidates[pool])
    assignment, centres = kmeans(points, n, seed)
    distance = np.linalg.norm(points - centres[assignment], axis=1)
    picks = []
    for cluster in range(n):
        inside = np.flatnonzero(assignment == cluster)
        if len(inside):
            picks.append(pool[inside[np.argmin(distance[inside])]])
    chosen = set(picks)
    picks += [i for i in pool if i not in chosen][:n - len(picks)]  # too few clusters
    picks.sort(key=lambda i: (margin[i], i))
    return [int(candidates[i]) for i in picks]
