"""The switch's cures (issue 20): an average of the weights validated and kept, and
augmentation that grows with the warm-up."""
import dataclasses

import pytest
import torch

from orangecontrib.deepimage.core import find_images
from orangecontrib.deepimage.core.train import preset, train_classifier
from orangecontrib.deepimage.core.train.augment import augment
from orangecontrib.deepimage.core.train.average import WeightAverage, ema_decay


def test_the_decay_averages_over_the_asked_epochs():
    assert ema_decay(1.0, 30) == pytest.approx(1 - 1 / 30)
    assert ema_decay(2.0, 30) == pytest.approx(1 - 1 / 60)
    assert ema_decay(0.0, 30) == 0.0 and ema_decay(1.0, 1) == 0.0


def test_the_average_follows_the_weights_and_is_applied_only_inside_the_block():
    layer = torch.nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    average = WeightAverage(layer, 0.75)
    with torch.no_grad():
        layer.weight.fill_(5.0)
    average.update()  # 0.75 x 1 + 0.25 x 5
    with average.applied() as module:
        assert torch.allclose(module.weight, torch.full((1, 2), 2.0))
    assert torch.allclose(layer.weight, torch.full((1, 2), 5.0))  # its own again
    average.update()  # 0.75 x 2 + 0.25 x 5
    assert torch.allclose(average.average["weight"], torch.full((1, 2), 2.75))


def test_a_run_keeps_the_averaged_weights(colour_dir):
    paths = find_images(colour_dir)
    labels = [0 if "/blue/" in p else 1 for p in paths]
    base = dataclasses.replace(preset("squeezenet", "fine-tune"), image_size=32,
                               batch_size=8, epochs=2, head_epochs=1, patience=5)
    plain = train_classifier(paths, labels, 2, dataclasses.replace(base, ema_epochs=0.0))
    averaged = train_classifier(paths, labels, 2, dataclasses.replace(base, ema_epochs=1.0))
    assert plain.best.phase == averaged.best.phase == "network"
    # the same steps, kept as they are or averaged: the kept weights differ
    first = [p for p in plain.net.parameters()][0]
    assert not torch.allclose(first, [p for p in averaged.net.parameters()][0])
    assert averaged.best.val_accuracy >= 0.75


def test_ramped_augmentation_starts_from_the_image_as_it_is():
    x = torch.arange(2 * 32 * 32 * 3, dtype=torch.float32).reshape(2, 32, 32, 3) % 255
    config = dataclasses.replace(preset("squeezenet", "fine-tune"), flip=False)
    assert torch.allclose(augment(x, config, torch.Generator().manual_seed(0), 0.0), x,
                          atol=1e-3)
    full = augment(x, config, torch.Generator().manual_seed(0))
    assert torch.equal(augment(x, config, torch.Generator().manual_seed(0), 1.0), full)
    half = augment(x, config, torch.Generator().manual_seed(0), 0.5)
    assert 0 < (half - x).abs().mean() < (full - x).abs().mean()
