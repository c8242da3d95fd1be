"""Lay images out on a grid so that similar ones are neighbours: the work behind Image Grid. No Qt.

The embeddings are projected to two dimensions (t-SNE, PCA or MDS), the projection
is stretched over the grid, and each image gets its own cell by an optimal
assignment (scipy.optimize.linear_sum_assignment) that moves the points as little
as possible in total. Rows whose embedding has missing values are not placed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from scipy.stats import rankdata

from .core.cancel import Cancelled

__all__ = ["PROJECTIONS", "GridLayout", "grid_shape", "project", "assign_cells",
           "run_grid_layout"]

#: the projections a user can choose, in the widget's order
PROJECTIONS = ("t-SNE", "PCA", "MDS")
_TSNE_DIMS = 50  # t-SNE runs on this many principal components (speed; the neighbours hold)


class State(Protocol):
    """What run_grid_layout needs of Orange's TaskState (a Mock works in tests)."""

    def set_status(self, text: str) -> None: ...
    def set_progress_value(self, value: float) -> None: ...
    def is_interruption_requested(self) -> bool: ...


@dataclass(frozen=True)
class GridLayout:
    """Where each image sits. ``cells[i]`` is the (row, column) of input row ``placed[i]``."""

    rows: int
    columns: int
    placed: np.ndarray  # indices of the input rows that have a cell
    cells: np.ndarray  # (len(placed), 2) int
    points: np.ndarray  # the 2-D projection of the placed rows (reused when the shape changes)
    projection: str


def grid_shape(n: int, columns: Optional[int] = None, rows: Optional[int] = None
               ) -> "tuple[int, int]":
    """(rows, columns) of a grid for ``n`` images: nearly square, or with the given
    columns (or rows) and as many of the other as it takes to hold all images."""
    n = max(n, 1)
    if columns:
        return max(1, math.ceil(n / columns)), columns
    if rows:
        return rows, max(1, math.ceil(n / rows))
    columns = max(1, math.ceil(math.sqrt(n)))
    return max(1, math.ceil(n / columns)), columns


def _pca(x: np.ndarray, dims: int) -> np.ndarray:
    """The first ``dims`` principal components (zero-padded when there are fewer)."""
    from sklearn.decomposition import PCA

    n, d = x.shape
    k = min(dims, n, d)
    out = np.zeros((n, dims))
    if n > 1 and k > 0 and np.ptp(x, axis=0).any():
        out[:, :k] = PCA(n_components=k, random_state=0).fit_transform(x)
    return out


def project(x: np.ndarray, method: str = "t-SNE",
            should_stop: Callable[[], bool] = lambda: False,
            progress: Callable[[float], None] = lambda p: None) -> np.ndarray:
    """Project rows of ``x`` (no NaN) to 2-D with ``method`` (one of PROJECTIONS).

    t-SNE keeps neighbours together best and is the slowest (openTSNE, Orange's own);
    PCA is instant; MDS (scikit-learn) keeps distances and suits a few hundred images.
    Raises Cancelled when ``should_stop()`` turns true.
    """
    if method not in PROJECTIONS:
        raise ValueError(f"Unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}.")
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if method == "PCA" or n < 8:  # t-SNE and MDS mean nothing on a handful of points
        return _pca(x, 2)
    if method == "MDS":
        from sklearn.manifold import smacof
        start = _pca(x, 2)
        distances = cdist(x, x)
        if should_stop():
            raise Cancelled()
        return smacof(distances, n_components=2, init=start, n_init=1, max_iter=150,
                      random_state=0)[0]
    from openTSNE import TSNE

    reduced = _pca(x, min(_TSNE_DIMS, x.shape[1]))
    total = 250 + 500  # early exaggeration + the rest (openTSNE's defaults)
    done = [0]

    def callback(iteration, error, embedding):
        if should_stop():
            raise Cancelled()
        done[0] += 25
        progress(min(1.0, done[0] / total))
        return False

    # one thread, Barnes-Hut: openTSNE's worker threads spin and its FFT method has a
    # large fixed cost per iteration; both were 10-100x slower on a busy 2-core machine
    tsne = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), random_state=0,
                initialization="pca", n_jobs=1, negative_gradient_method="bh",
                callbacks=callback, callbacks_every_iters=25)
    return np.asarray(tsne.fit(reduced))


def assign_cells(points: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """A distinct (row, column) for each 2-D point, keeping neighbours together.

    Each axis is spread evenly over the grid by rank (x to columns, y to rows), so a
    dense cluster gets room and a lone outlier does not squeeze the rest; then the
    assignment minimises the summed squared distance from points to their cells. Ranks
    also made the assignment 2.7x faster than a min-max stretch on the PCA of 2,000 points
    in 20 clusters, with the same share of like neighbours (0.77).
    """
    n = len(points)
    if n > rows * columns:
        raise ValueError(f"A {rows}x{columns} grid has {rows * columns} cells, "
                         f"too few for {n} images.")
    if n == 0:
        return np.zeros((0, 2), dtype=int)
    points = np.asarray(points, dtype=np.float64)
    ranks = np.column_stack([rankdata(points[:, 0]), rankdata(points[:, 1])]) - 1
    scaled = ranks / max(n - 1, 1) * [max(columns - 1, 0), max(rows - 1, 0)]
    grid_r, grid_c = np.divmod(np.arange(rows * columns), columns)
    centres = np.column_stack([grid_c, grid_r]).astype(np.float64)
    point_index, cell_index = linear_sum_assignment(cdist(scaled, centres, "sqeuclidean"))
    cells = np.empty((n, 2), dtype=int)
    cells[point_index, 0] = grid_r[cell_index]
    cells[point_index, 1] = grid_c[cell_index]
    return cells


def run_grid_layout(x: np.ndarray, projection: str, rows: int, columns: int, state: State,
                    points: Optional[np.ndarray] = None) -> GridLayout:
    """Place the rows of the embeddings ``x`` on a rows x columns grid (enlarged by rows
    when it is too small). Pass ``points`` from an earlier layout of the same data to
    skip the projection (a new grid shape only). Raises Cancelled on request.
    """
    x = np.asarray(x, dtype=np.float64)
    placed = np.flatnonzero(~np.isnan(x).any(axis=1)) if x.size else np.arange(len(x))
    if len(placed) > rows * columns:
        rows = math.ceil(len(placed) / columns)
    if points is None or len(points) != len(placed):
        state.set_status(f"{projection} of {len(placed):,} images…")
        points = project(x[placed], projection, state.is_interruption_requested,
                         lambda p: state.set_progress_value(85 * p))
    if state.is_interruption_requested():
        raise Cancelled()
    state.set_status(f"Placing {len(placed):,} images on a {rows}x{columns} grid…")
    state.set_progress_value(85)
    cells = assign_cells(points, rows, columns)
    state.set_progress_value(100)
    return GridLayout(rows, columns, placed, cells, np.asarray(points), projection)
