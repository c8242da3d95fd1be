"""The pixel classifier: trained on two images it beats the threshold on held-out
uneven illumination; its skops file round-trips and foreign files are refused;
bad label images are clear errors naming the file; several kinds of object."""
import pickle

import numpy as np
import pytest
import skops.io

from orangecontrib.deepimage.core.segment import (LabelError, PixelClassifier, SegmenterFileError,
                                                  ThresholdParams, measure_objects, object_f1,
                                                  pixel_accuracy, segment_threshold)
from orangecontrib.deepimage.core.segment.classifier_file import FORMAT
from orangecontrib.deepimage.core.segment.synthetic import (make_cells, make_texture_mosaic,
                                                            sparse_labels)

SHAPE = (160, 160)


@pytest.fixture(scope="module")
def trained():
    train = [make_cells(SHAPE, 18, seed=seed, gradient=1.0) for seed in (1, 2)]
    labels = [sparse_labels(s.labels, 0.05, seed=i) for i, s in enumerate(train)]
    return PixelClassifier(n_estimators=16).fit([s.image for s in train], labels)


@pytest.fixture(scope="module")
def held_out():
    return [make_cells(SHAPE, 18, seed=seed, gradient=1.0) for seed in (20, 21)]


def test_trained_on_two_images_beats_threshold_on_uneven_illumination(trained, held_out):
    classifier = np.mean([object_f1(s.labels, trained.segment(s.image)[0]) for s in held_out])
    otsu = np.mean([object_f1(s.labels, segment_threshold(
        s.image, ThresholdParams(correct_background=False))) for s in held_out])
    assert classifier >= 0.95
    assert classifier > otsu + 0.2


def test_segment_gives_labels_and_class_map(trained, held_out):
    labels, class_map = trained.segment(held_out[0].image)
    assert labels.dtype == np.int32 and class_map.dtype == np.uint8
    assert set(np.unique(class_map)) <= {1, 2}
    assert np.mean(class_map[labels > 0] == 2) > 0.99  # filled holes are the rest
    assert trained.class_names == ["background", "object"]
    proba = trained.predict_proba(held_out[0].image)
    assert proba.shape == SHAPE + (2,) and np.allclose(proba.sum(axis=2), 1, atol=1e-5)
    exact = trained.predict(held_out[0].image, exact=True)
    assert np.mean(exact == class_map) > 0.999


def test_tiles_join_without_seams(trained, held_out):
    image = held_out[0].image
    whole = trained.predict(image, exact=True)
    tiled = trained.predict(image, tile=48, exact=True)
    assert np.mean(whole == tiled) > 0.995


def test_skops_round_trip(trained, held_out, tmp_path):
    path = tmp_path / "cells.skops"
    trained.save(path)
    loaded = PixelClassifier.load(path)
    assert loaded.class_names == trained.class_names and loaded.features == "filters"
    image = held_out[1].image
    assert np.array_equal(loaded.predict(image), trained.predict(image))


def test_a_pickle_is_refused_without_being_loaded(trained, tmp_path):
    path = tmp_path / "model.skops"
    with open(path, "wb") as f:
        pickle.dump({"format": FORMAT, "version": 1}, f)
    with pytest.raises(SegmenterFileError, match="model.skops"):
        PixelClassifier.load(path)


def test_a_foreign_skops_file_is_refused(tmp_path):
    from sklearn.linear_model import LogisticRegression

    path = tmp_path / "foreign.skops"
    model = LogisticRegression().fit(np.random.rand(20, 2), np.arange(20) % 2)
    skops.io.dump({"format": FORMAT, "version": 1, "forest": model}, str(path))
    with pytest.raises(SegmenterFileError, match="foreign.skops.*LogisticRegression"):
        PixelClassifier.load(path)
    other = tmp_path / "other.skops"
    skops.io.dump({"what": "a dictionary"}, str(other))
    with pytest.raises(SegmenterFileError, match="other.skops.*not a pixel classifier"):
        PixelClassifier.load(other)


def test_a_file_of_another_version_is_refused(trained, tmp_path):
    path = tmp_path / "future.skops"
    skops.io.dump({"format": FORMAT, "version": 99, "forest": trained.forest}, str(path))
    with pytest.raises(SegmenterFileError, match="future.skops.*version 99"):
        PixelClassifier.load(path)


def test_damaged_and_missing_files_are_refused(tmp_path):
    path = tmp_path / "broken.skops"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(SegmenterFileError, match="broken.skops"):
        PixelClassifier.load(path)
    with pytest.raises(SegmenterFileError, match="missing.skops"):
        PixelClassifier.load(tmp_path / "missing.skops")


def test_bad_label_images_are_clear_errors_naming_the_file():
    image = make_cells((64, 64), 4, seed=1).image
    good = sparse_labels(make_cells((64, 64), 4, seed=1).labels, 0.1)
    with pytest.raises(LabelError, match="b.png.*the same size"):
        PixelClassifier().fit([image, image], [good, good[:32]], names=["a.png", "b.png"])
    with pytest.raises(LabelError, match="b.png.*no labels"):
        PixelClassifier().fit([image, image], [good, np.zeros_like(good)], names=["a.png", "b.png"])
    with pytest.raises(LabelError, match="only class"):
        PixelClassifier().fit([image], [np.where(good > 0, 1, 0)])
    with pytest.raises(LabelError, match="one label image per image"):
        PixelClassifier().fit([image, image], [good])


def test_an_image_with_other_channels_is_refused(trained):
    with pytest.raises(ValueError, match="1 channel"):
        trained.predict(np.zeros((32, 32, 3), np.uint8))


def test_several_kinds_of_object_get_a_class_each():
    train, test = (make_texture_mosaic((96, 96), 3, seed=seed) for seed in (0, 1))
    model = PixelClassifier(n_estimators=16).fit([train.image], [train.labels])
    assert model.class_names == ["background", "object 1", "object 2"]
    labels, class_map = model.segment(test.image, split_touching=False)
    assert pixel_accuracy(test.labels, class_map) > 0.7  # chance: about 0.33
    objects = measure_objects(labels, test.image, class_map, model.class_names)
    assert set(objects["class"]) == {"object 1", "object 2"}


@pytest.mark.slow
def test_deep_features_tell_textures_of_equal_brightness_apart():
    train = make_texture_mosaic((128, 128), 2, seed=0)
    tests = [make_texture_mosaic((128, 128), 2, seed=seed) for seed in (1, 2)]
    model = PixelClassifier(n_estimators=16).fit([train.image], [train.labels], features="deep")
    assert model.projection is not None
    accuracy = np.mean([pixel_accuracy(t.labels, model.predict(t.image)) for t in tests])
    assert accuracy >= 0.9


def test_deep_features_round_trip_with_their_projection(tmp_path):
    train = make_texture_mosaic((64, 64), 2, seed=0)
    model = PixelClassifier(n_estimators=4).fit([train.image], [train.labels], features="both")
    model.save(tmp_path / "deep.skops")
    loaded = PixelClassifier.load(tmp_path / "deep.skops")
    assert np.array_equal(loaded.predict(train.image), model.predict(train.image))
