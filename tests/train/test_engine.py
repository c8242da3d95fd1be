"""core.train: presets, size limits, learning, early stopping, cancel, seeds, image cache."""
import dataclasses
import math
import os

import numpy as np
import pytest
import torch

from orangecontrib.deepimage.core import Cancelled, Embedder, find_images
from orangecontrib.deepimage.core.imagecache import DecodedImageCache, load_images
from orangecontrib.deepimage.core.networks import build_backbone
from orangecontrib.deepimage.core.train import (MIN_IMAGE_SIZE, TrainConfig, predict_proba,
                                                preset, stratified_split, train_classifier)


def labelled(colour_dir):
    paths = find_images(colour_dir)
    return paths, [0 if "/blue/" in p else 1 for p in paths]


def fast(mode="last-layer", **changes):
    return dataclasses.replace(preset("squeezenet", mode), image_size=32, **changes)


@pytest.mark.parametrize("name", ["squeezenet", "vgg16", "inception-v3"])
def test_the_smallest_image_size_is_the_networks_real_limit(name):
    backbone = build_backbone(name).eval()
    smallest = MIN_IMAGE_SIZE[name]
    assert backbone.min_input_size == smallest
    with torch.no_grad():
        backbone(torch.zeros(1, 3, smallest, smallest))
        with pytest.raises(RuntimeError):
            backbone(torch.zeros(1, 3, smallest - 1, smallest - 1))
    with pytest.raises(ValueError, match=f"at least {smallest} x {smallest}"):
        TrainConfig(model=name, image_size=smallest - 1)


def test_every_backbone_resets_its_classifier_and_reads_embeddings():
    for name, size in (("squeezenet", 29), ("vgg16", 32), ("inception-v3", 75)):
        backbone = build_backbone(name).eval()
        backbone.reset_classifier(3)
        with torch.no_grad():
            features = backbone.forward_features(torch.rand(2, 3, size, size))
            embedding = backbone.forward_head(features, pre_logits=True)
            torch.testing.assert_close(backbone.head_from_embedding(embedding),
                                       backbone.forward_head(features))
        assert backbone.forward_head(features).shape == (2, 3)


def test_inception_auxiliary_logits_at_299_only_while_training():
    backbone = build_backbone("inception-v3")
    backbone.reset_classifier(4)
    backbone.train()
    logits, aux = backbone.forward_with_aux(torch.rand(2, 3, 299, 299))
    assert logits.shape == aux.shape == (2, 4)
    assert backbone.forward_with_aux(torch.rand(2, 3, 75, 75))[1] is None
    backbone.eval()
    with torch.no_grad():
        assert backbone.forward_with_aux(torch.rand(1, 3, 299, 299))[1] is None


def test_presets_keep_the_papers_and_the_modes_recipes():
    """Each network's own preset records its paper; the modes keep its batch size,
    dropout and auxiliary loss and set the rest (one recipe per mode, every network)."""
    from orangecontrib.deepimage.core.models import get_spec
    vgg = get_spec("vgg16").train
    assert (vgg.optimizer, vgg.momentum, vgg.weight_decay, vgg.dropout) == ("sgd", 0.9, 5e-4, 0.5)
    assert vgg.scale_jitter > 0
    inception = get_spec("inception-v3").train
    assert (inception.optimizer, inception.label_smoothing) == ("rmsprop", 0.1)
    for name in ("squeezenet", "vgg16", "inception-v3"):
        scratch, tuned = preset(name, "scratch"), preset(name, "fine-tune")
        last = preset(name, "last-layer")
        own = get_spec(name).train
        assert (scratch.optimizer, scratch.learning_rate, scratch.epochs) == ("adamw", 5e-4, 30)
        assert (tuned.optimizer, tuned.epochs, last.epochs, last.patience) == \
            ("adamw", 12, 300, 30)
        assert scratch.dropout == tuned.dropout == own.dropout
        assert scratch.aux_loss_weight == own.aux_loss_weight
        assert not scratch.flip and scratch.scale_jitter == 0 and scratch.tta == 5
    assert preset("inception-v3", "scratch").aux_loss_weight > 0
    assert preset("vgg16", "scratch").size == 224 and preset("inception-v3").size == 299
    assert preset("squeezenet").size == 227 and preset("squeezenet").mode == "fine-tune"
    with pytest.raises(ValueError, match="mode"):
        TrainConfig(mode="sideways")


def test_stratified_split_keeps_every_class_on_both_sides():
    labels = np.array([0] * 10 + [1] * 3 + [2])
    train, val = stratified_split(labels, 0.2, seed=1)
    assert sorted(np.concatenate([train, val])) == list(range(14))
    assert set(labels[val]) == {0, 1} and set(labels[train]) == {0, 1, 2}
    assert len(stratified_split(labels, 0.0, 1)[1]) == 0


def test_last_layer_learns_and_reports_progress_and_epochs(colour_dir):
    paths, labels = labelled(colour_dir)
    progress, epochs = [], []
    train, test = paths[::2] + paths[1::4], paths[3::4]
    result = train_classifier(train, [labels[paths.index(p)] for p in train], 2,
                              fast(epochs=30), progress=lambda d, t: progress.append((d, t)),
                              on_epoch=epochs.append)
    assert progress[-1][0] == progress[-1][1] and progress == sorted(progress)
    assert [r.epoch for r in epochs] == list(range(1, len(epochs) + 1))
    assert all(r.phase == "head" and r.seconds >= 0 for r in epochs)
    assert result.history == tuple(epochs) and result.best_epoch >= 1
    probs, rows, skipped = predict_proba(result.net, test, 32)
    assert probs.shape == (len(test), 2) and not skipped
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    truth = [labels[paths.index(p)] for p in test]
    assert (probs.argmax(1) == truth).mean() >= 0.9


def test_fine_tuning_is_repeatable_with_a_seed_and_learns(colour_dir):
    paths, labels = labelled(colour_dir)
    config = fast("fine-tune", epochs=2, head_epochs=3, batch_size=8)
    first = train_classifier(paths, labels, 2, config)
    second = train_classifier(paths, labels, 2, config)
    assert [r.phase for r in first.history] == ["head"] * 3 + ["network"] * 2
    for a, b in zip(first.history, second.history):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-5)
    probs = predict_proba(first.net, paths, 32)[0]
    np.testing.assert_allclose(probs, predict_proba(second.net, paths, 32)[0], atol=1e-5)
    assert (probs.argmax(1) == labels).mean() >= 0.9


def test_early_stopping_restores_the_best_epoch(tmp_path, write_colours):
    """Labels unrelated to the images: the validation loss rises as the head memorises."""
    paths = write_colours(tmp_path, per_class=20, classes=("red",))
    labels = list(np.random.default_rng(3).permutation([0, 1] * 10))
    config = fast(epochs=300, patience=3, class_weighting=False, dropout=0.0,
                  head_learning_rate=0.05, batch_size=8)
    result = train_classifier(paths, labels, 2, config)
    assert result.stopped_early and len(result.history) < 300
    best = min(result.history, key=lambda r: r.val_loss)
    assert result.best_epoch == best.epoch < result.history[-1].epoch
    _, val = stratified_split(np.array(labels), config.validation_fraction, config.seed)
    probs = predict_proba(result.net, [paths[i] for i in val], 32)[0]
    loss = -np.log(probs[np.arange(len(val)), np.array(labels)[val]]).mean()
    assert loss == pytest.approx(best.val_loss, rel=1e-3)
    assert loss != pytest.approx(result.history[-1].val_loss, rel=1e-3)


def test_validation_loss_is_measured_as_training_measures_it(tmp_path, write_colours):
    """With label smoothing the validation loss is the smoothed cross-entropy training
    minimises (the Trainer plots both; early stopping follows it), and ``val_nll`` keeps
    the plain cross-entropy: both recomputed here from the kept model's probabilities."""
    paths = write_colours(tmp_path, per_class=20, classes=("red",))
    labels = list(np.random.default_rng(3).permutation([0, 1] * 10))
    config = fast(epochs=20, patience=20, class_weighting=False, dropout=0.0,
                  head_learning_rate=0.05, batch_size=8, label_smoothing=0.1)
    result = train_classifier(paths, labels, 2, config)
    _, val = stratified_split(np.array(labels), config.validation_fraction, config.seed)
    probs = predict_proba(result.net, [paths[i] for i in val], 32)[0]
    logp = np.log(probs)
    nll = -logp[np.arange(len(val)), np.array(labels)[val]]
    smoothed = 0.9 * nll - 0.1 * logp.mean(1)  # torch's label_smoothing=0.1
    assert result.best.val_nll == pytest.approx(nll.mean(), rel=1e-3)
    assert result.best.val_loss == pytest.approx(smoothed.mean(), rel=1e-3)
    assert result.best.val_loss != pytest.approx(result.best.val_nll, rel=1e-2)
    plain = train_classifier(paths, labels, 2, dataclasses.replace(config, label_smoothing=0))
    assert all(r.val_loss == r.val_nll for r in plain.history)


def test_cancel_keeps_the_best_model_so_far(colour_dir):
    paths, labels = labelled(colour_dir)
    epochs = []
    result = train_classifier(paths, labels, 2, fast(epochs=50, patience=50),
                              on_epoch=epochs.append, should_stop=lambda: len(epochs) >= 2)
    assert result.cancelled and len(result.history) == 2 and result.best_epoch in (1, 2)
    assert predict_proba(result.net, paths[:2], 32)[0].shape == (2, 2)
    with pytest.raises(Cancelled):  # no epoch finished: no model at all
        train_classifier(paths, labels, 2, fast("fine-tune"), should_stop=lambda: True)


def test_unreadable_training_images_are_reported_not_fatal(colour_dir, tmp_path):
    paths, labels = labelled(colour_dir)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    result = train_classifier(paths + [str(bad), str(tmp_path / "gone.png")], labels + [0, 1],
                              2, fast("fine-tune", epochs=1, head_epochs=1))
    assert [os.path.basename(s.source) for s in result.skipped] == ["broken.png", "gone.png"]
    assert "not found" in result.skipped[1].reason and sum(result.class_counts) == len(paths)


@pytest.mark.parametrize("name,size", [("vgg16", 32), ("inception-v3", 75)])
def test_other_architectures_train_one_short_step(colour_dir, name, size):
    paths, labels = labelled(colour_dir)
    config = dataclasses.replace(preset(name, "scratch"), image_size=size, epochs=1,
                                 batch_size=4, validation_fraction=0.0)
    picked = paths[:2] + paths[-2:]  # one batch: one step
    result = train_classifier(picked, labels[:2] + labels[-2:], 2, config)
    assert len(result.history) == 1 and math.isfinite(result.history[0].train_loss)
    assert predict_proba(result.net, picked[:1], size)[0].shape == (1, 2)


def test_decoded_images_are_cached_across_calls_and_bounded(colour_dir):
    paths = find_images(colour_dir)[:4]
    cache = DecodedImageCache(max_bytes=3 * 20 * 20 * 3)
    first = load_images(paths[1:], 20, cache=cache)
    assert cache.misses == 3 and len(cache) == 3
    again = load_images(paths[1:], 20, cache=cache)
    assert cache.hits == 3
    np.testing.assert_array_equal(first.images, again.images)
    # images load in parallel, so which one a fourth pushes out is not fixed; that
    # the cache stays within its bound is
    load_images(paths[:1], 20, cache=cache)
    assert cache.misses == 4 and len(cache) == 3 and cache.bytes <= cache.max_bytes
    os.utime(paths[0], ns=(1, 1))  # a changed file is not served from the cache
    load_images(paths[:1], 20, cache=cache)
    assert cache.hits == 3 and cache.misses == 5


def test_embedder_image_size_override(colour_dir, tmp_path):
    from orangecontrib.deepimage.core import EmbeddingCache
    paths = find_images(colour_dir)[:3]
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    small = Embedder("squeezenet", backend="torch", image_size=48, cache=cache)
    assert "|48|" in small.cache_key and small.image_size == 48
    vectors = small.embed(paths).embeddings
    native = Embedder("squeezenet", backend="torch", cache=cache).embed(paths)
    assert native.cached == 0 and not np.allclose(vectors, native.embeddings)
    onnx = Embedder("squeezenet", backend="onnx", image_size=48, cache=False).embed(paths)
    np.testing.assert_allclose(onnx.embeddings, vectors, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("mode", ["last-layer", "fine-tune"])
def test_progress_has_one_total_from_the_start(colour_dir, tmp_path, mode):
    """Unreadable images, early stopping and a merged last batch change the work, not the
    total: the part not needed counts as done, and the count only rises."""
    paths, labels = labelled(colour_dir)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    calls = []
    result = train_classifier(paths + [str(bad)], labels + [0], 2,
                              fast(mode, epochs=40, head_epochs=3, batch_size=5, patience=1),
                              progress=lambda done, total: calls.append((done, total)))
    assert len(result.skipped) == 1 and result.stopped_early
    assert len({total for _, total in calls}) == 1
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == calls[0][1] and done[0] > 0


def test_the_image_size_comes_from_the_images(tmp_path, write_colours):
    """Small images train small (lesson 2: 64-px digits at 96 px), at least 80 px, and
    the smallest (enlarged to 80 px) for 10 of the recipe's 12 network epochs; photos
    natively."""
    from orangecontrib.deepimage.core.presets import auto_image_size, enlarged_to_floor, \
        fit_to_images, image_sides, size_for_images
    assert [auto_image_size(side) for side in (8, 32, 40, 48, 64, 100, 150, 640)] == \
        [80, 80, 80, 96, 96, 160, 227, 227]
    assert [enlarged_to_floor(side) for side in (8, 32, 42, 43, 64, None)] == \
        [True, True, True, False, False, False]
    assert auto_image_size(64, "inception-v3") == 96 and auto_image_size(20, "vgg16") == 80
    assert auto_image_size(None) == 227 and auto_image_size(500, "vgg16") == 224
    paths = write_colours(tmp_path / "small", per_class=4, size=40)
    (tmp_path / "small" / "red" / "broken.png").write_bytes(b"not a png")
    paths.append(str(tmp_path / "small" / "red" / "broken.png"))
    assert image_sides(paths + ["https://example.org/a.jpg"]) == [40] * 8
    assert size_for_images(paths) == 80 and size_for_images([]) == 227
    # fine-tuning these 40-px images: 80 px, 10 of the preset's 12 network epochs
    tuned = fit_to_images(preset(), paths)
    assert (tuned.image_size, tuned.epochs, preset().epochs) == (80, 10, 12)
    assert fit_to_images(dataclasses.replace(preset(), epochs=30), paths).epochs == 25
    # a size the user chose, the last layer alone, and training from scratch keep theirs
    fixed = dataclasses.replace(preset(), image_size=64)
    assert fit_to_images(fixed, paths) == fixed
    assert fit_to_images(preset(mode="last-layer"), paths) == preset(mode="last-layer")
    scratch = fit_to_images(preset(mode="scratch"), paths)
    assert (scratch.image_size, scratch.epochs) == (80, preset(mode="scratch").epochs)
    big = write_colours(tmp_path / "big", per_class=2, size=64)
    assert (fit_to_images(preset(), big).image_size, fit_to_images(preset(), big).epochs) \
        == (96, 12)
    labels = [0 if "/blue/" in p else 1 for p in paths]
    config = dataclasses.replace(preset("squeezenet", "scratch"), epochs=1, batch_size=4)
    result = train_classifier(paths, labels, 2, config)
    assert result.image_size == 80 and result.config.image_size == 80
    assert result.budget_note == ""  # from scratch: the epochs asked for
    # fine-tuning says what the small images changed
    tuned = dataclasses.replace(preset(), epochs=6, head_epochs=1, batch_size=8,
                                random_weights=True)
    result = train_classifier(paths, labels, 2, tuned)
    assert result.config.epochs == 5 and result.config.image_size == 80
    assert result.budget_note == "Small images: trained at 80 px, for 5 of the 6 network epochs."
    # the last layer alone trains on the embeddings at the network's own size
    last = dataclasses.replace(preset("squeezenet", "last-layer"), epochs=1)
    assert train_classifier(paths, labels, 2, last).image_size == 227
