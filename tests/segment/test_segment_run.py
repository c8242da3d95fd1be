"""segment_paths over real files: lab TIFFs measured in their original units,
unreadable files skipped with a reason, no objects is count 0, masks and crops
written, progress and cancel."""
import numpy as np
import pytest
import tifffile
from PIL import Image

from orangecontrib.deepimage.core.cancel import Cancelled
from orangecontrib.deepimage.core.segment import (PixelClassifier, ThresholdParams,
                                                  read_label_image, read_original, segment_paths)
from orangecontrib.deepimage.core.segment.synthetic import make_cells, sparse_labels


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("segment-run")
    cells = make_cells((96, 96), 6, seed=7, gradient=0.0, touching=0.0)
    tifffile.imwrite(root / "cells16.tif", cells.image)  # 16-bit counts
    Image.fromarray(cells.image).save(root / "cells16.png")  # a 16-bit PNG
    Image.fromarray(np.full((40, 40), 90, np.uint8)).save(root / "empty.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    np.save(root / "truth.npy", cells.labels)
    return root


def test_measurements_come_in_the_files_original_units(folder):
    truth = np.load(folder / "truth.npy")
    original = tifffile.imread(folder / "cells16.tif")
    results = list(segment_paths([folder / "cells16.tif", folder / "cells16.png"], ThresholdParams()))
    for result in results:
        assert result.skipped_reason is None
        assert result.summary.count == truth.max()
        assert result.objects["max intensity"].max() == original.max()  # counts, not 0..255
        assert result.objects["mean intensity"].max() > 255
    np.testing.assert_allclose(results[0].objects["mean intensity"], results[1].objects["mean intensity"])


def test_read_original_keeps_dtype_and_values(folder):
    values = read_original(folder / "cells16.tif")
    assert values.dtype == np.uint16 and values.ndim == 2
    assert np.array_equal(values, tifffile.imread(folder / "cells16.tif"))


def test_unreadable_is_skipped_and_empty_is_count_zero(folder):
    paths = [folder / "broken.png", folder / "empty.png", folder / "missing.png"]
    broken, empty, missing = segment_paths(paths, ThresholdParams())
    assert broken.objects is None and broken.skipped_reason
    assert missing.skipped_reason == "file not found"
    assert empty.skipped_reason is None and empty.summary.count == 0
    assert all(len(column) == 0 for column in empty.objects.values())


def test_masks_and_crops_are_written(folder, tmp_path):
    (result,) = segment_paths([folder / "cells16.tif"], ThresholdParams(),
                              masks_out=tmp_path / "masks", crops_out=tmp_path / "crops")
    mask = read_label_image(result.mask_path)
    assert result.mask_path.endswith("cells16.png") and mask.max() == result.summary.count
    assert len(result.crop_paths) == result.summary.count
    first = tifffile.imread(folder / "cells16.tif")
    with Image.open(result.crop_paths[0]) as crop:
        row = result.objects
        assert crop.size == (min(96, row["bbox_max_col"][0] + 2) - max(0, row["bbox_min_col"][0] - 2),
                             min(96, row["bbox_max_row"][0] + 2) - max(0, row["bbox_min_row"][0] - 2))
        assert np.asarray(crop).max() <= first.max() and np.asarray(crop).max() > 255


def test_the_same_name_twice_gets_two_masks(folder, tmp_path):
    results = list(segment_paths([folder / "cells16.tif", folder / "cells16.png"], ThresholdParams(),
                                 masks_out=tmp_path))
    assert len({r.mask_path for r in results}) == 2


def test_progress_and_cancel(folder):
    seen = []
    list(segment_paths([folder / "empty.png"] * 3, ThresholdParams(), progress=seen.append))
    assert seen == pytest.approx([1 / 3, 2 / 3, 1])
    calls = iter([False, True])
    results = []
    with pytest.raises(Cancelled):
        for result in segment_paths([folder / "empty.png"] * 3, ThresholdParams(),
                                    is_cancelled=lambda: next(calls)):
            results.append(result)
    assert len(results) == 1


def test_a_classifier_segments_files_too(folder):
    train = make_cells((96, 96), 6, seed=8, gradient=0.0)
    model = PixelClassifier(n_estimators=8).fit([train.image], [sparse_labels(train.labels, 0.1)])
    (result,) = segment_paths([folder / "cells16.tif"], model)
    assert result.summary.count == np.load(folder / "truth.npy").max()
    assert "class" not in result.objects  # one kind of object


def test_pixels_are_reserved_in_the_budget_while_an_image_is_worked_on(folder):
    from orangecontrib.deepimage.core.budget import PixelBudget

    class Recording(PixelBudget):
        def __init__(self):
            super().__init__(10_000_000)
            self.asked = []

        def acquire(self, pixels, timeout=None):
            self.asked.append(pixels)
            super().acquire(pixels, timeout)

    budget = Recording()
    list(segment_paths([folder / "cells16.tif", folder / "empty.png"], ThresholdParams(),
                       budget=budget))
    assert budget.asked == [96 * 96, 40 * 40] and budget.in_use == 0


def test_a_multichannel_lab_tiff_is_measured_per_channel(tmp_path):
    cells = make_cells((80, 80), 5, seed=3, gradient=0.0, touching=0.0)
    stack = np.stack([cells.image, cells.image // 2, np.full_like(cells.image, 7)])  # C, Y, X
    tifffile.imwrite(tmp_path / "three.tif", stack, photometric="minisblack",
                     metadata={"axes": "CYX"})
    (result,) = segment_paths([tmp_path / "three.tif"], ThresholdParams())
    assert result.summary.count == cells.labels.max()
    objects = result.objects
    np.testing.assert_allclose(objects["mean intensity 2"], objects["mean intensity 1"] / 2, rtol=0.01)
    assert set(objects["max intensity 3"]) == {7.0}


def test_too_many_pixels_is_a_skipped_row(folder):
    (result,) = segment_paths([folder / "cells16.tif"], ThresholdParams(), max_pixels=1000)
    assert result.objects is None and "megapixel limit" in result.skipped_reason
