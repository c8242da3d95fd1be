"""The threshold method: touching cells split, solid round ones never cut, uneven
illumination corrected, dark objects, no objects."""
import numpy as np
import pytest

from orangecontrib.deepimage.core.segment import (ThresholdParams, object_f1, segment_threshold,
                                                  summarise)
from orangecontrib.deepimage.core.segment.synthetic import make_cells


def _disc(shape, centre, radius):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def _ellipse(shape, centre, a, b, angle):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    dy, dx = yy - centre[0], xx - centre[1]
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    return (u / a) ** 2 + (v / b) ** 2 <= 1


def _picture(mask, rng=None, noise=0.02):
    rng = rng or np.random.default_rng(0)
    return (mask * 0.8 + 0.1 + rng.normal(0, noise, mask.shape)).astype(np.float32)


def test_two_touching_discs_are_split_in_two():
    shape = (80, 100)
    mask = _disc(shape, (40, 35), 14) | _disc(shape, (40, 61), 14)  # overlapping a little
    labels = segment_threshold(_picture(mask), ThresholdParams())
    assert labels.max() == 2
    left, right = labels[40, 30], labels[40, 66]
    assert left and right and left != right


def test_touching_discs_stay_whole_when_splitting_is_off():
    shape = (80, 100)
    mask = _disc(shape, (40, 35), 14) | _disc(shape, (40, 61), 14)
    labels = segment_threshold(_picture(mask), ThresholdParams(split_touching=False))
    assert labels.max() == 1


@pytest.mark.parametrize("seed", range(6))
def test_round_and_elliptic_solid_objects_are_never_cut(seed):
    rng = np.random.default_rng(seed)
    shape = (90, 90)
    a = rng.uniform(8, 30)
    mask = _ellipse(shape, (45, 45), a, a * rng.uniform(0.4, 1.0), rng.uniform(0, np.pi))
    for params in (ThresholdParams(), ThresholdParams(diameter=(8, 70)),
                   ThresholdParams(method="li"), ThresholdParams(method="local", diameter=(8, 70))):
        labels = segment_threshold(_picture(mask, rng), params)
        assert labels.max() == 1, params


def test_a_rod_is_not_cut_along_its_length():
    mask = np.zeros((60, 140), bool)
    mask[24:36, 10:130] = True
    assert segment_threshold(_picture(mask), ThresholdParams()).max() == 1


def test_background_correction_rescues_uneven_illumination():
    scores = {}
    for correct in (False, True):
        f1s = [object_f1(s.labels, segment_threshold(s.image, ThresholdParams(correct_background=correct)))
               for s in (make_cells((160, 160), 18, seed=seed, gradient=1.0) for seed in (3, 4))]
        scores[correct] = np.mean(f1s)
    assert scores[True] >= 0.85
    assert scores[True] > scores[False] + 0.2


def test_dark_objects_on_a_light_background():
    shape = (80, 80)
    mask = _disc(shape, (25, 25), 9) | _disc(shape, (55, 55), 12)
    image = 1.0 - _picture(mask)
    assert segment_threshold(image, ThresholdParams(dark=True)).max() == 2
    light = segment_threshold(image, ThresholdParams(dark=False))
    assert not (light[25, 25] and light[55, 55] and light.max() == 2)


def test_diameter_range_removes_debris_and_giants():
    shape = (120, 120)
    mask = _disc(shape, (30, 30), 2) | _disc(shape, (30, 80), 10) | _disc(shape, (85, 60), 30)
    labels = segment_threshold(_picture(mask), ThresholdParams(diameter=(12, 30)))
    assert labels.max() == 1 and labels[30, 80] == 1


def test_no_objects_is_count_zero_not_an_error():
    flat = np.full((64, 64), 1000, np.uint16)
    for method in ("otsu", "li", "local"):
        labels = segment_threshold(flat, ThresholdParams(method=method))
        assert labels.dtype == np.int32 and labels.max() == 0
        assert summarise(labels).count == 0 and summarise(labels).mean_area == 0


def test_colour_and_16_bit_images():
    mask = _disc((64, 64), (32, 32), 12)
    grey16 = (_picture(mask) * 40000).astype(np.uint16)
    rgb = np.repeat(grey16[:, :, None], 3, axis=2)
    assert segment_threshold(grey16).max() == 1
    assert np.array_equal(segment_threshold(grey16), segment_threshold(rgb))


@pytest.mark.parametrize("kwargs", [{"method": "triangle"}, {"diameter": (10, 5)},
                                    {"diameter": (0, 5)}])
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        ThresholdParams(**kwargs)
