"""grid.py: projections, the optimal cell assignment, run_grid_layout's progress and cancel."""
from unittest.mock import Mock

import numpy as np
import pytest

from orangecontrib.deepimage.core.cancel import Cancelled
from orangecontrib.deepimage.grid import (PROJECTIONS, assign_cells, grid_shape, project,
                                          run_grid_layout)


def state(stop_after=None):
    calls = [0]

    def stop():
        calls[0] += 1
        return stop_after is not None and calls[0] > stop_after

    return Mock(is_interruption_requested=stop)


def clusters(n_per=15, k=4, dims=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dims)) * 6
    labels = np.repeat(np.arange(k), n_per)
    return centres[labels] + rng.normal(size=(len(labels), dims)), labels


def neighbour_agreement(cells, labels):
    """Share of horizontally/vertically adjacent occupied cell pairs with the same label."""
    grid = {tuple(c): l for c, l in zip(cells, labels)}
    same = total = 0
    for (r, c), label in grid.items():
        for other in ((r + 1, c), (r, c + 1)):
            if other in grid:
                total += 1
                same += grid[other] == label
    return same / total


def test_grid_shape_holds_every_image():
    assert grid_shape(2000) == (45, 45)
    assert grid_shape(10) == (3, 4)
    assert grid_shape(1) == (1, 1)
    assert grid_shape(30, columns=7) == (5, 7)
    assert grid_shape(30, rows=4) == (4, 8)


def test_assignment_gives_distinct_cells_in_the_points_order():
    points = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 5.1]])
    cells = assign_cells(points, 3, 3)
    assert len({tuple(c) for c in cells}) == 5
    assert [tuple(c) for c in cells[:4]] == [(0, 0), (0, 2), (2, 0), (2, 2)]
    assert tuple(cells[4]) == (1, 1)
    with pytest.raises(ValueError, match="too few for 5 images"):
        assign_cells(points, 2, 2)


@pytest.mark.parametrize("method", PROJECTIONS)
def test_similar_images_are_neighbours(method):
    x, labels = clusters()
    layout = run_grid_layout(x, method, 8, 8, state())
    assert layout.cells.shape == (60, 2) and len({tuple(c) for c in layout.cells}) == 60
    # four clusters of 15 on 8 x 8: about 0.25 by chance, 0.8-0.85 at best (borders)
    assert neighbour_agreement(layout.cells, labels) > 0.7


def test_rows_with_missing_values_are_left_out_and_the_grid_grows():
    x, _ = clusters(n_per=5, k=2)
    x[3, 0] = np.nan
    layout = run_grid_layout(x, "PCA", 2, 3, state())
    assert list(layout.placed) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert (layout.rows, layout.columns) == (3, 3)


def test_new_shape_reuses_the_projection_and_reports_progress():
    x, labels = clusters()
    first = run_grid_layout(x, "t-SNE", 8, 8, state())
    progress = state()
    second = run_grid_layout(x, "t-SNE", 6, 12, progress, points=first.points)
    assert (second.rows, second.columns) == (6, 12)
    values = [c.args[0] for c in progress.set_progress_value.call_args_list]
    assert values == [85, 100]  # no projection this time
    assert neighbour_agreement(second.cells, labels) > 0.7


def test_tsne_can_be_cancelled_midway():
    x, _ = clusters(n_per=50)
    progress = []
    with pytest.raises(Cancelled):
        project(x, "t-SNE", state(stop_after=3).is_interruption_requested, progress.append)
    assert 0 < len(progress) < 5


def test_tiny_inputs():
    assert project(np.zeros((1, 4)), "t-SNE").shape == (1, 2)
    assert project(np.ones((3, 4)), "MDS").shape == (3, 2)  # constant: all at the origin
    with pytest.raises(ValueError, match="Unknown projection"):
        project(np.zeros((3, 2)), "UMAP")
