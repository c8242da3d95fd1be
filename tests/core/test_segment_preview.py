"""The live preview's core (core/segment/preview.py) and its jobs (seglive.py): features
of part of an image equal the whole image's, labelled pixels' features are computed
once, the view comes first and the whole image last, memory stays in its budget,
requests can be cancelled."""
import os

import numpy as np
import pytest
from PIL import Image

from orangecontrib.deepimage.core.cancel import Cancelled
from orangecontrib.deepimage.core.segment.classifier import LabelError, PixelClassifier
from orangecontrib.deepimage.core.segment.features import feature_count
from orangecontrib.deepimage.core.segment.filterfeatures import filter_features
from orangecontrib.deepimage.core.segment.preview import (FeatureStore, ImageFeatures, View,
                                                          fit_preview, preview_maps)
from orangecontrib.deepimage.core.segment.synthetic import make_cells, sparse_labels
from orangecontrib.deepimage.seglive import (PreviewModels, live_classifier, live_segmenter,
                                             warm_features)
from orangecontrib.deepimage.segmentation import PixelCache


@pytest.fixture(scope="module")
def cells():
    return [make_cells((300, 260), count=30, seed=seed) for seed in (1, 2)]


class State:
    def __init__(self, cancel_after=None):
        self.partial, self.asked, self.cancel_after = [], 0, cancel_after

    def is_interruption_requested(self):
        self.asked += 1
        return self.cancel_after is not None and self.asked > self.cancel_after

    def set_partial_result(self, value):
        self.partial.append(value)


def test_features_at_rows_and_columns_are_the_whole_images():
    plane = np.random.default_rng(0).random((131, 97)).astype(np.float32)
    rows, cols = np.arange(3, 131, 4), np.arange(0, 97, 3)
    whole = filter_features(plane)
    assert np.array_equal(filter_features(plane, (rows, cols)), whole[np.ix_(rows, cols)])


def test_region_and_pixels_match_the_whole_image(cells):
    image = cells[0].image
    whole = ImageFeatures(image, "filters").whole()
    feats = ImageFeatures(image, "filters")
    region = feats.region(40, 30, 250, 200, 3)
    assert region.shape == (70, 57, whole.shape[2])
    # a region is computed with a margin of context, as tiles are: the same up to rounding
    assert np.abs(region - whole[40:250:3, 30:200:3]).max() < 0.01
    flat = np.array([0, 5 * 260 + 9, 120 * 260 + 130])  # in one block of 256 x 256
    assert np.abs(feats.at(flat) - whole.reshape(-1, whole.shape[2])[flat]).max() < 0.01
    known = feats.nbytes
    feats.at(flat[::-1])  # computed once: nothing new is kept
    assert feats.nbytes == known
    assert feats.whole_features is None  # only what was asked for
    # pixels all over the image (labels from a folder): the whole image is cheaper
    feats.at(np.array([260 * 260 + 5, 299 * 260 + 259]))
    assert feats.whole_features is not None


def test_preview_maps_view_first_whole_last(cells):
    train, test = cells
    labelled = {"a": (ImageFeatures(train.image, "filters"), sparse_labels(train.labels, 0.02))}
    model = fit_preview(labelled)
    feats = ImageFeatures(test.image, "filters")
    maps = list(preview_maps(model, feats, View(50, 40, 200, 180, 2)))
    assert [(m.step, m.final) for m in maps] == [(2, False), (1, False), (1, True)]
    assert (maps[0].top, maps[0].left, maps[0].class_map.shape) == (50, 40, (75, 70))
    truth = test.labels > 0
    assert ((maps[-1].class_map == 2) == truth).mean() > 0.95
    assert ((maps[0].class_map == 2) == truth[50:200:2, 40:180:2]).mean() > 0.95
    # the whole image's features are kept: the next request slices them
    assert feats.whole_features is not None
    # the whole image in view: its step, then the whole image at full resolution
    steps = [m.step for m in preview_maps(model, feats, View.whole(test.image.shape, 100))]
    assert steps == [3, 1]


def test_cancelled_between_steps(cells):
    train = cells[0]
    feats = ImageFeatures(train.image, "filters")
    model = fit_preview({"a": (feats, sparse_labels(train.labels, 0.02))})
    maps = preview_maps(model, feats, View(0, 0, 100, 100, 2), lambda: True)
    assert next(maps).step == 2
    with pytest.raises(Cancelled):
        next(maps)
    fresh = ImageFeatures(train.image, "filters")
    with pytest.raises(Cancelled):  # the whole image's features stop between tiles
        fresh.whole(lambda: True)
    assert fresh.whole_features is None


def test_store_stays_in_its_budget(cells):
    store = FeatureStore(max_bytes=2 * 300 * 260 * 21 * 4)
    images = [make_cells((300, 260), count=10, seed=s).image for s in range(4)]
    for i, image in enumerate(images):
        feats = store.get(f"i{i}", image, "filters")
        feats.whole()
        store.trim(keep=feats)
        assert store.nbytes <= store.max_bytes
    assert store.get("i3", images[3], "filters").whole_features is not None  # the newest kept
    assert store.get("i0", images[0], "filters").whole_features is None  # the oldest dropped


def test_live_jobs_send_the_view_then_the_whole(cells, tmp_path):
    paths = []
    for i, cell in enumerate(cells):
        paths.append(os.path.join(tmp_path, f"c{i}.png"))
        Image.fromarray(cell.image).save(paths[-1])
    pixels, models = PixelCache(), PreviewModels()
    # an image shown before any label: its features computed ahead, and kept
    warm_features(pixels, models, paths[0], "filters", State())
    assert models.store.get(paths[0], pixels.get(paths[0]), "filters").whole_features \
        is not None
    labels = {paths[0]: sparse_labels(cells[0].labels, 0.02)}
    state = State()
    final = live_classifier(pixels, models, labels, "filters", paths[1], ["bg", "cell"],
                            View(0, 0, 150, 260, 2), state)
    assert [m.step for m in state.partial] == [2, 1] and final.final
    assert ((final.class_map == 2) == (cells[1].labels > 0)).mean() > 0.95
    assert models.fits == 1
    model = models.model(pixels, labels, "filters", ["bg", "cell"])
    assert models.fits == 1 and model.class_names == ["bg", "cell"]  # kept
    more = {paths[0]: labels[paths[0]].copy()}
    more[paths[0]][10:12, 10:60] = 2  # a stroke: trained again, on the kept features
    live_classifier(pixels, models, more, "filters", paths[0], None, None, State())
    assert models.fits == 2
    again = live_segmenter(model, pixels, models, paths[1], None, State())
    assert np.array_equal(again.class_map, final.class_map)
    with pytest.raises(Cancelled):
        live_segmenter(model, pixels, models, paths[1], View(0, 0, 80, 80, 2),
                       State(cancel_after=0))
    rgb = os.path.join(tmp_path, "rgb.png")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(rgb)
    with pytest.raises(ValueError, match="trained on images with 1 channel"):
        live_segmenter(model, pixels, models, rgb, None, State())
    with pytest.raises(ValueError, match="c0.png"):
        models.model(pixels, {paths[0]: np.ones((5, 5), np.uint8)}, "filters")


def test_images_with_other_channels_are_refused_as_by_fit(cells):
    """The quick forest refuses a gray and an RGB image together, as fit() does."""
    gray, labels = cells[0].image, sparse_labels(cells[0].labels, 0.02)
    rgb = np.stack([gray] * 3, axis=2)
    message = r"the images have different numbers of channels \(\[1, 3\]\)"
    with pytest.raises(LabelError, match=message):
        PixelClassifier().fit([gray, rgb], [labels, labels])
    with pytest.raises(LabelError, match=message):
        fit_preview({"gray": (ImageFeatures(gray, "filters"), labels),
                     "rgb": (ImageFeatures(rgb, "filters"), labels)})


def test_whole_fits_counts_the_features_a_pixel_gets():
    for features, shape in [("filters", (10, 10)), ("filters", (10, 10, 3)),
                            ("deep", (10, 10)), ("both", (10, 10, 3))]:
        image = np.zeros(shape, np.uint8)
        need = 100 * 4 * feature_count(features, 1 if len(shape) == 2 else 3)
        assert ImageFeatures(image, features, max_whole_bytes=need).whole_fits
        assert not ImageFeatures(image, features, max_whole_bytes=need - 1).whole_fits
