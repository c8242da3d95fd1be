"""Measurements (original units, channels, classes, many objects), label images
and crops."""
import numpy as np
import pytest
from PIL import Image

from orangecontrib.deepimage.core.segment import (MaskError, crop_object, measure_objects,
                                                  read_label_image, summarise, write_label_image)
from orangecontrib.deepimage.core.segment.objects import SHAPE_COLUMNS


def _two_squares():
    labels = np.zeros((40, 60), np.int32)
    labels[5:15, 5:15] = 1      # 10 x 10
    labels[20:36, 30:50] = 2    # 16 x 20
    return labels


def test_shape_columns_and_summary():
    labels = _two_squares()
    objects = measure_objects(labels)
    assert list(objects) == list(SHAPE_COLUMNS)
    assert objects["id"].tolist() == [1, 2]
    assert objects["area"].tolist() == [100, 320]
    assert objects["bbox_min_row"].tolist() == [5, 20] and objects["bbox_max_col"].tolist() == [15, 50]
    assert objects["centroid_y"][0] == pytest.approx(9.5) and objects["centroid_x"][1] == pytest.approx(39.5)
    assert objects["solidity"].tolist() == [1.0, 1.0]
    assert objects["major_axis"][1] > objects["minor_axis"][1]
    summary = summarise(labels)
    assert summary.count == 2 and summary.mean_area == 210
    assert summary.covered_fraction == pytest.approx(420 / 2400)


def test_shape_columns_agree_with_scikit_image_regionprops():
    from skimage.measure import regionprops_table

    from orangecontrib.deepimage.core.segment.synthetic import make_cells

    labels = make_cells((200, 200), 60, radius=(3, 9), touching=0.5, seed=4).labels
    labels[labels == 3] = 0  # a missing id
    ours = measure_objects(labels)
    theirs = regionprops_table(labels, properties=(
        "label", "area", "perimeter", "centroid", "bbox", "axis_major_length",
        "axis_minor_length", "eccentricity", "solidity"))
    pairs = {"id": "label", "area": "area", "perimeter": "perimeter", "centroid_y": "centroid-0",
             "centroid_x": "centroid-1", "bbox_min_row": "bbox-0", "bbox_min_col": "bbox-1",
             "bbox_max_row": "bbox-2", "bbox_max_col": "bbox-3", "major_axis": "axis_major_length",
             "minor_axis": "axis_minor_length", "eccentricity": "eccentricity"}
    for ours_name, their_name in pairs.items():
        np.testing.assert_allclose(ours[ours_name], theirs[their_name], atol=1e-5, err_msg=ours_name)
    # solidity: the hull of pixel centres, not corners (see objects.py): a little higher
    assert np.all(ours["solidity"] >= theirs["solidity"] - 1e-9)
    assert np.all(ours["solidity"] - theirs["solidity"] < 0.2)


def test_intensities_are_in_the_original_16_bit_units():
    labels = _two_squares()
    image = np.full(labels.shape, 300, np.uint16)
    image[labels == 1] = 40000
    image[labels == 2] = 12000
    image[25, 40] = 65535
    objects = measure_objects(labels, image)
    assert objects["mean intensity"][0] == 40000
    assert objects["min intensity"][1] == 12000 and objects["max intensity"][1] == 65535


def test_each_channel_has_its_columns():
    labels = _two_squares()
    image = np.zeros(labels.shape + (3,), np.float32)
    image[..., 0], image[..., 1], image[..., 2] = 1.5, 2.5, -1.0
    objects = measure_objects(labels, image)
    assert objects["mean intensity 2"].tolist() == [2.5, 2.5]
    assert objects["min intensity 3"].tolist() == [-1.0, -1.0]
    assert "mean intensity" not in objects


def test_class_column_names_the_kind_of_each_object():
    labels = _two_squares()
    class_map = np.ones(labels.shape, np.uint8)
    class_map[labels == 1], class_map[labels == 2] = 3, 2
    objects = measure_objects(labels, None, class_map, ["background", "cell", "debris"])
    assert objects["class"].tolist() == ["debris", "cell"]
    one_kind = measure_objects(labels, None, np.where(labels > 0, 2, 1), ["background", "cell"])
    assert "class" not in one_kind


def test_no_objects_is_an_empty_table():
    labels = np.zeros((20, 20), np.int32)
    objects = measure_objects(labels, np.ones((20, 20), np.uint16))
    assert all(len(column) == 0 for column in objects.values())
    assert "mean intensity" in objects
    assert summarise(labels).count == 0


def test_ten_thousand_objects_are_measured():
    labels = np.zeros((400, 400), np.int32)
    ids = np.arange(1, 10_001).reshape(100, 100)
    labels[1::4, 1::4] = ids  # 10,000 single pixels
    labels[2::4, 1::4] = ids  # ... two pixels tall
    objects = measure_objects(labels, labels.astype(np.uint16))
    assert len(objects["id"]) == 10_000 and objects["area"].max() == 2
    assert np.array_equal(objects["mean intensity"], objects["id"].astype(float))


def test_label_images_round_trip_as_16_bit_png(tmp_path):
    labels = _two_squares() * 30000
    path = write_label_image(tmp_path / "mask.png", labels)
    assert path.endswith(".png")
    with Image.open(path) as image:
        assert image.mode.startswith("I")
    assert np.array_equal(read_label_image(path), labels)


def test_more_than_65535_objects_go_to_a_tiff(tmp_path):
    labels = np.arange(70_000, dtype=np.int32).reshape(280, 250)
    path = write_label_image(tmp_path / "many.png", labels)
    assert path.endswith(".tif")
    assert np.array_equal(read_label_image(path), labels)


def test_bad_label_images_are_refused_with_the_file_name(tmp_path):
    colour = np.zeros((10, 10, 3), np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(tmp_path / "colour.png")
    with pytest.raises(MaskError, match="colour.png.*channels"):
        read_label_image(tmp_path / "colour.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(MaskError, match="text.png"):
        read_label_image(tmp_path / "text.png")
    grey_rgb = np.repeat(np.arange(100, dtype=np.uint8).reshape(10, 10)[..., None], 3, axis=2)
    Image.fromarray(grey_rgb).save(tmp_path / "greyrgb.png")
    assert read_label_image(tmp_path / "greyrgb.png")[3, 4] == 34


def test_crop_object_cuts_its_box_with_padding():
    labels = _two_squares()
    image = np.arange(labels.size).reshape(labels.shape)
    crop = crop_object(image, labels, 1, pad=2)
    assert crop.shape == (14, 14) and crop[0, 0] == image[3, 3]
    assert crop_object(image, labels, 2, pad=10).shape == (30, 40)  # cut at the image's edge
    with pytest.raises(ValueError, match="object 7"):
        crop_object(image, labels, 7)
