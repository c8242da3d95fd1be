"""The fine-tuning recipe's parts: augmentation, test-time views (in predict_proba, the
Model and the ONNX export), the logistic-regression baseline, the time budget."""
import dataclasses
import math
import time

import numpy as np
import pytest
import torch

from orangecontrib.deepimage.core import find_images
from orangecontrib.deepimage.core.predict import predict_proba
from orangecontrib.deepimage.core.train import build_net, preset, train_classifier
from orangecontrib.deepimage.core.train.augment import augment, tta_views
from orangecontrib.deepimage.core.train.baseline import logreg_accuracy
from orangecontrib.deepimage.core.train.epochs import EpochRunner
from orangecontrib.deepimage.core.train.budget import network_epochs_that_fit, size_for_budget


def fast(**changes):
    """The fine-tuning preset, small and quick."""
    return dataclasses.replace(preset("squeezenet", "fine-tune"), image_size=32,
                               batch_size=8, **{"epochs": 2, "head_epochs": 2, **changes})


def labelled(folder):
    paths = find_images(folder)
    return paths, [0 if "/blue/" in p else 1 for p in paths]


def test_tta_views_are_the_image_and_four_whole_pixel_shifts():
    images = torch.zeros(2, 40, 40, 3, dtype=torch.uint8)
    images[:, 20, 20] = 255  # one bright pixel
    views = tta_views(images, 5)
    assert len(views) == 5 and all(v.shape == (2, 40, 40, 3) for v in views)
    assert torch.equal(views[0], images.float())
    where = [tuple(int(i) for i in torch.nonzero(v[0, :, :, 0])[0]) for v in views[1:]]
    assert sorted(where) == sorted([(20, 22), (20, 18), (22, 20), (18, 20)])  # 5% of 40
    assert len(tta_views(images, 1)) == 1


def test_augmentation_crops_and_shifts_each_image_differently():
    x = torch.arange(2 * 32 * 32 * 3, dtype=torch.float32).reshape(2, 32, 32, 3) % 255
    x = torch.cat([x, x])  # two pairs of identical images
    config = fast()
    out = augment(x, config, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.equal(out, x)
    assert not torch.equal(out[0], out[2])  # the same image, a different crop
    still = dataclasses.replace(config, crop_scale=1.0, shift=0.0, flip=False)
    assert torch.equal(augment(x, still, torch.Generator().manual_seed(0)), x)


def test_predict_proba_averages_the_views_probabilities(colour_dir):
    paths, _ = labelled(colour_dir)
    net = build_net(dataclasses.replace(fast(), random_weights=True), 2).eval()
    with torch.no_grad():  # a last layer that is not zero, so the views differ
        net.backbone.get_classifier().weight.normal_(0, 1.0)
    plain, rows, _ = predict_proba(net, paths[:4], 32, tta=1)
    five, rows5, _ = predict_proba(net, paths[:4], 32, tta=5)
    from orangecontrib.deepimage.core.imagecache import load_images
    x = torch.from_numpy(load_images(paths[:4], 32).images)
    with torch.no_grad():
        expected = torch.stack([torch.softmax(net.logits(v).double(), 1)
                                for v in tta_views(x, 5)]).mean(0).numpy()
    np.testing.assert_allclose(five, expected, rtol=1e-6)
    np.testing.assert_allclose(five.sum(1), 1)
    assert np.abs(plain - five).max() > 1e-6 and list(rows) == list(rows5)


def test_the_baseline_is_logistic_regression_on_the_same_split():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    x = rng.normal(0, 1, (40, 8)) + 3 * y[:, None]
    assert logreg_accuracy(x[::2], y[::2], x[1::2], y[1::2]) == 1.0
    assert math.isnan(logreg_accuracy(x[::2], y[::2], x[:0], y[:0]))


def test_a_run_reports_logistic_regressions_validation_accuracy(colour_dir):
    paths, labels = labelled(colour_dir)
    result = train_classifier(paths, labels, 2, fast(epochs=1))
    assert 0.5 <= result.baseline_accuracy <= 1.0
    assert {r.baseline_accuracy for r in result.history} == {result.baseline_accuracy}
    untrained = train_classifier(paths, labels, 2, fast(epochs=1, random_weights=True))
    assert math.isnan(untrained.baseline_accuracy)  # no pretrained embeddings to compare


def test_a_budget_too_short_for_one_network_epoch_trains_the_last_layer_only(colour_dir):
    paths, labels = labelled(colour_dir)
    result = train_classifier(paths, labels, 2, fast(epochs=5, head_epochs=3,
                                                     time_budget=0.001))
    assert {r.phase for r in result.history} == {"head"} and result.best is not None
    assert "only the last layer" in result.budget_note and not result.cancelled


def test_the_budget_plans_the_network_epochs_that_fit():
    now = time.perf_counter()
    # an embedding pass of 100 images in 1 s: a network epoch of 80 + 20 takes ~2.6 s
    assert network_epochs_that_fit(15, now + 10, 1.0, 80, 100)[0] == 3
    assert "3 of 15" in network_epochs_that_fit(15, now + 10, 1.0, 80, 100)[1]
    assert network_epochs_that_fit(15, now + 100, 1.0, 80, 100) == (15, "")
    assert network_epochs_that_fit(15, None, 1.0, 80, 100) == (15, "")
    assert network_epochs_that_fit(15, now + 1, 1.0, 80, 100)[0] == 0


def test_the_runner_shortens_its_schedule_to_the_deadline():
    runner = EpochRunner.__new__(EpochRunner)
    runner.deadline = time.perf_counter() + 3.5
    started = time.perf_counter() - 2.0  # two epochs took 2 s: three more fit
    assert runner._affordable(10, 2, started) == 5
    runner.deadline = None
    assert runner._affordable(10, 2, started) == 10


def test_the_model_predicts_with_its_views_and_the_onnx_export_has_them(colour_table,
                                                                          tmp_path):
    import onnxruntime

    from orangecontrib.deepimage.core.onnx import export_classifier_onnx
    from orangecontrib.deepimage.learner import ImageClassifierLearner
    model = ImageClassifierLearner(epochs=1, head_epochs=1, image_size=32, batch_size=8)(
        colour_table)
    assert model.tta == 5
    five = model(colour_table, model.Probs)
    model.tta = 1
    one = model(colour_table, model.Probs)
    assert np.abs(one - five).max() > 1e-6 and np.allclose(five.sum(1), 1)
    path = export_classifier_onnx(model.net, tmp_path / "m.onnx", image_size=32,
                                  classes=model.class_values, tta=5)
    from orangecontrib.deepimage.core.imagecache import load_images
    from orangecontrib.deepimage.data import image_paths
    images = load_images(image_paths(colour_table)[:6], 32).images
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    _, probabilities = session.run(None, {"images": images})
    np.testing.assert_allclose(probabilities, five[:6], atol=2e-4)


def test_a_tight_budget_lowers_a_size_chosen_from_the_images_not_a_fixed_one():
    config = dataclasses.replace(preset("squeezenet", "fine-tune"), random_weights=True,
                                 image_size=160, time_budget=1e-3)
    net = build_net(config, 2)
    size, note = size_for_budget(net, config, 1000, "cpu")
    assert size == 64 and "from 160 to 64 px" in note  # down to the floor
    roomy = dataclasses.replace(config, time_budget=1e6)
    assert size_for_budget(net, roomy, 1000, "cpu") == (160, "")
    assert all(p.grad is None for p in net.parameters())  # timed, not trained
