"""Segment Images' work without the widget: run_segmentation on real generated cell
images (core.segment.synthetic), threshold and trained classifier, with a stand-in state."""
import os
import sys
from unittest.mock import Mock

import numpy as np
import pytest
from PIL import Image

from orangecontrib.deepimage.core.cancel import Cancelled
from orangecontrib.deepimage.core.segment.synthetic import make_cells, sparse_labels
from orangecontrib.deepimage.core.segment.threshold import ThresholdParams
from orangecontrib.deepimage.data import image_paths, image_table
from orangecontrib.deepimage.seglabels import (LABELS, MASKS, decode_labels, encode_labels,
                                               labels_from_folder)
from orangecontrib.deepimage.seglive import PreviewModels
from orangecontrib.deepimage.segmentation import (MASK_TYPE, PixelCache, labelled_images,
                                                  painted_class_names, preview_classifier,
                                                  preview_threshold, run_segmentation,
                                                  summary, train_classifier)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "widgets"))
from tests_state import State  # noqa: E402


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """Three 128 x 128 uint16 cell images, their truths, and a file that is no image."""
    folder = tmp_path_factory.mktemp("cells")
    truths = {}
    for i in range(3):
        cell = make_cells((128, 128), count=12, gradient=0.0, touching=0.0, seed=i)
        Image.fromarray(cell.image).save(folder / f"cells{i}.png")
        truths[f"cells{i}"] = cell
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    paths = sorted(str(p) for p in folder.iterdir())
    table = image_table(paths, str(folder))
    return folder, table, truths


def test_threshold_gives_objects_images_and_skipped(cells, tmp_path):
    folder, table, truths = cells
    result = run_segmentation(table, ThresholdParams(method="otsu"), str(tmp_path), State())
    assert (result.n_images, result.n_skipped) == (3, 1)
    assert "broken" in result.skipped.get_column("image name")[0]
    assert result.skipped.get_column("reason")[0]
    # Objects: one row per cell, measurements in X, no class (one kind), a crop each
    objects = result.objects
    expected = sum(truth.labels.max() for truth in truths.values())
    assert abs(len(objects) - expected) <= 3, (len(objects), expected)
    names = [v.name for v in objects.domain.attributes]
    for column in ("area", "perimeter", "centroid_x", "eccentricity", "solidity"):
        assert column in names
    assert objects.domain.class_var is None
    areas = objects.get_column("area")
    assert (areas > 50).all() and (areas < 700).all()  # radii 7 to 12 px
    image_var = objects.domain["image"]
    assert image_var.attributes["type"] == "image"
    crops = image_paths(objects)
    assert all(os.path.isfile(p) for p in crops) and len(set(crops)) == len(crops)
    assert set(objects.get_column("source image")) == {"cells0", "cells1", "cells2"}
    # Images: the input rows with counts and a mask column naming label images
    images = result.images
    counts = images.get_column("objects")
    assert counts.sum() == len(objects)
    mask_var = images.domain["mask"]
    assert mask_var.attributes["type"] == MASK_TYPE
    masks = image_paths(images, mask_var)
    for mask_path, count in zip(masks, counts):
        mask = np.asarray(Image.open(mask_path))
        assert mask.shape == (128, 128) and len(np.unique(mask)) - 1 == count
    fractions = images.get_column("covered fraction")
    assert ((fractions > 0.02) & (fractions < 0.5)).all()
    assert "3 images" in summary(result) and "1 skipped" in summary(result)


def test_classifier_with_two_kinds_gives_a_class_column(cells, tmp_path):
    folder, table, truths = cells
    path = str(folder / "cells0.png")
    cell = truths["cells0"]
    # two kinds: the brighter half of the cells, and the dimmer half
    ids = np.arange(1, cell.labels.max() + 1)
    means = np.array([cell.image[cell.labels == i].mean() for i in ids])
    bright = np.isin(cell.labels, ids[means > np.median(means)])
    labels = sparse_labels(cell.labels, 0.2)
    labels[(labels == 2) & bright] = 3
    pixels = PixelCache()
    classifier = train_classifier(pixels, {path: labels}, "filters",
                                  ["Background", "Dim", "Bright"])
    assert list(classifier.class_names) == ["Background", "Dim", "Bright"]
    result = run_segmentation(table, classifier, str(tmp_path), State())
    assert result.segmenter is classifier
    objects = result.objects
    assert list(objects.domain.class_var.values) == ["Dim", "Bright"]
    kind = objects.get_column("class")
    brightness = objects.get_column("mean intensity")
    assert (kind == 0).any() and (kind == 1).any()
    assert np.median(brightness[kind == 1]) > np.median(brightness[kind == 0])


def test_without_crops_no_files_and_no_image_column(cells, tmp_path):
    _, table, _ = cells
    result = run_segmentation(table, ThresholdParams(), str(tmp_path), State(), crops=False)
    assert "image" not in result.objects.domain and len(result.objects) > 20
    assert not (tmp_path / "crops").exists()
    assert result.images.get_column("objects").sum() == len(result.objects)


def test_zero_objects_is_a_row_with_count_zero(tmp_path):
    Image.fromarray(np.full((64, 64), 300, np.uint16)).save(tmp_path / "empty.png")
    table = image_table([str(tmp_path / "empty.png")], str(tmp_path))
    result = run_segmentation(table, ThresholdParams(), str(tmp_path / "out"), State())
    assert result.objects is None and result.n_objects == 0
    assert result.images.get_column("objects").tolist() == [0]


def test_cancel_stops_before_the_next_image(cells, tmp_path):
    _, table, _ = cells
    state = Mock()
    state.is_interruption_requested.side_effect = [False, True, True, True, True]
    with pytest.raises(Cancelled):
        run_segmentation(table, ThresholdParams(), str(tmp_path), state)
    state.set_progress_value.assert_called()


def test_previews_give_class_maps_of_the_image(cells):
    folder, _, truths = cells
    path = str(folder / "cells1.png")
    pixels = PixelCache()
    _, threshold_map = preview_threshold(ThresholdParams(), pixels, path, State())
    truth = truths["cells1"].labels > 0
    assert threshold_map.shape == (128, 128)
    assert ((threshold_map == 2) == truth).mean() > 0.9
    labels = sparse_labels(truths["cells0"].labels, 0.1)
    classifier, class_map = preview_classifier(pixels, {str(folder / "cells0.png"): labels},
                                               "filters", path, None, State())
    assert ((class_map == 2) == truth).mean() > 0.9
    with pytest.raises(ValueError, match="Paint some labels"):
        train_classifier(pixels, {path: np.zeros((128, 128), np.uint8)})


def test_the_run_and_the_preview_check_labels_alike(cells):
    """train_classifier and the live preview's quick forest: the same messages, names."""
    folder, _, truths = cells
    pixels, models = PixelCache(), PreviewModels()
    path, other = str(folder / "cells0.png"), str(folder / "cells1.png")
    unpainted = {path: np.zeros((128, 128), np.uint8)}
    resized = {path: np.ones((5, 7), np.uint8)}
    for train in (train_classifier, lambda *a: models.model(*a, "filters")):
        with pytest.raises(ValueError, match="^Paint some labels first"):
            train(pixels, unpainted)
        with pytest.raises(ValueError, match=r"^The labels of cells0.png are 7x5 pixels, "
                                             r"but the image is 128x128\.$"):
            train(pixels, resized)
    labels = {other: unpainted[path], path: sparse_labels(truths["cells0"].labels, 0.1)}
    assert list(labelled_images(pixels, labels)) == [path]  # only the painted
    assert painted_class_names(labels, ["bg", "cell", "spare"]) == ["bg", "cell"]
    assert painted_class_names(labels, ["bg"]) is None  # no name for label 2
    assert train_classifier(pixels, labels, class_names=["bg", "cell"]).class_names \
        == models.model(pixels, labels, "filters", ["bg", "cell"]).class_names


def test_labels_from_a_folder_by_name(cells, tmp_path):
    folder, table, truths = cells
    keys = {f"cells{i}.png": str(folder / f"cells{i}.png") for i in range(3)}
    Image.fromarray(truths["cells0"].labels.astype(np.uint16)).save(tmp_path / "cells0.png")
    Image.fromarray(np.zeros((128, 128), np.uint8)).save(tmp_path / "cells1.png")
    Image.fromarray(np.ones((20, 20), np.uint8)).save(tmp_path / "cells2.tif")
    shapes = {key: (128, 128) for key in keys}
    loaded = labels_from_folder(str(tmp_path), keys, shapes, MASKS)
    assert list(loaded.labels) == ["cells0.png", "cells1.png"]
    assert set(np.unique(loaded.labels["cells0.png"])) == {1, 2}
    assert (loaded.labels["cells1.png"] == 1).all()  # a mask with no objects: background
    assert "cells2.tif: 20x20 pixels" in "\n".join(loaded.problems)
    # as labels: the mask has more values than kinds, the empty file no labels
    loaded = labels_from_folder(str(tmp_path), keys, shapes, LABELS)
    problems = "\n".join(loaded.problems)
    assert not loaded.labels and "object mask?" in problems
    assert "cells1.png: has no labels" in problems
    assert np.array_equal(decode_labels(encode_labels(truths["cells0"].labels > 0)),
                          truths["cells0"].labels > 0)


def test_classifier_objects_follow_the_diameter(cells, tmp_path):
    folder, table, truths = cells
    labels = {str(folder / "cells0.png"): sparse_labels(truths["cells0"].labels, 0.1)}
    classifier = train_classifier(PixelCache(), labels)
    kept = run_segmentation(table, classifier, str(tmp_path / "a"), State(), crops=False)
    huge = run_segmentation(table, classifier, str(tmp_path / "b"), State(), crops=False,
                            diameter=(60, 90))  # the cells are 14 to 24 px across
    assert kept.n_objects > 20 and huge.n_objects < kept.n_objects / 4
