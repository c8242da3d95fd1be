"""The Orange learner and model: Test & Score's rules, pickling, prior for bad images."""
import copy
import pickle
import warnings

import numpy as np
import pytest
from Orange.data import ContinuousVariable, Domain, StringVariable, Table

from orangecontrib.deepimage.core import Embedder
from orangecontrib.deepimage.data import embeddings_table, image_paths
from orangecontrib.deepimage.learner import ImageClassifierLearner, ImageClassifierModel


def learner(**changes):
    options = dict(mode="last-layer", image_size=32, epochs=30)
    options.update(changes)
    return ImageClassifierLearner("squeezenet", **options)


@pytest.fixture(scope="module")
def fitted(colour_table):
    return learner(mode="fine-tune", epochs=2, head_epochs=5, batch_size=8)(colour_table)


def test_name_and_incompatibility_reasons(colour_table):
    lrn = learner()
    assert lrn.name == "Image classifier (SqueezeNet 1.1)"
    assert lrn.incompatibility_reason(colour_table.domain) is None
    no_images = Domain([], colour_table.domain.class_var, [StringVariable("image")])
    assert "column of images" in lrn.incompatibility_reason(no_images)
    no_class = Domain([], None, colour_table.domain.metas)
    assert "categorical target" in lrn.incompatibility_reason(no_class)
    numeric = Domain([], ContinuousVariable("weight"), colour_table.domain.metas)
    assert "categorical target" in lrn.incompatibility_reason(numeric)
    with pytest.raises(ValueError, match="categorical target"):
        lrn(colour_table.transform(no_class))
    with pytest.raises(ValueError, match="at least 29"):
        ImageClassifierLearner("squeezenet", image_size=16)
    with pytest.raises(TypeError, match="Unknown training options"):
        ImageClassifierLearner("squeezenet", learning_speed=3)


def test_deepcopy_before_fit_shares_callbacks_and_pickling_drops_them(colour_table):
    class Widget:  # stands in for a widget that must not be copied with the learner
        def __deepcopy__(self, memo):
            raise AssertionError("the widget was deep-copied")

    widget = Widget()
    lrn = learner(epochs=3)
    lrn.epoch_callback = lambda record, w=widget: None
    lrn.should_stop = lambda w=widget: False
    twin = copy.deepcopy(lrn)
    assert twin.epoch_callback is lrn.epoch_callback and twin.config() == lrn.config()
    restored = pickle.loads(pickle.dumps(twin))
    assert restored.epoch_callback is None and restored.should_stop is None
    assert restored.config() == lrn.config()
    seen = []
    twin.epoch_callback = seen.append
    twin(colour_table)
    assert len(seen) >= 1


def test_model_predicts_every_row_and_pickles(fitted, colour_table, tmp_path):
    probs = fitted(colour_table, fitted.Probs)
    assert probs.shape == (len(colour_table), 2) and not np.isnan(probs).any()
    assert (probs.argmax(1) == colour_table.Y).mean() >= 0.9
    assert fitted.best_epoch in [r.epoch for r in fitted.history]
    assert {r.phase for r in fitted.history} == {"head", "network"}
    path = tmp_path / "model.pkcls"
    path.write_bytes(pickle.dumps(fitted))
    loaded = pickle.loads(path.read_bytes())
    assert isinstance(loaded, ImageClassifierModel) and "_net" not in loaded.__getstate__()
    assert loaded.history == fitted.history and loaded.best_epoch == fitted.best_epoch
    np.testing.assert_allclose(loaded(colour_table, loaded.Probs), probs, atol=1e-6)


def test_unreadable_images_get_the_prior_and_a_warning(fitted, colour_table, tmp_path):
    table = colour_table[[0, 1, 20]].copy()
    with table.unlocked(table.metas):
        column = table.domain.metas.index(table.domain["image"])
        table.metas[0, column] = "blue/missing.png"
        table.metas[1, column] = "../nowhere.jpg"
    with pytest.warns(UserWarning, match="2 images could not be read") as caught:
        probs = fitted(table, fitted.Probs)
    assert "missing.png: file not found" in str(caught[0].message)
    np.testing.assert_allclose(probs[:2], [[0.5, 0.5]] * 2)
    assert probs[2].argmax() == 1 and not np.isnan(probs).any()


def test_model_keeps_the_unreadable_training_images(colour_table, tmp_path):
    table = colour_table.copy()
    column = table.domain.metas.index(table.domain["image"])
    with table.unlocked(table.metas):
        table.metas[3, column] = "blue/missing.png"
    with pytest.warns(UserWarning) as caught:
        model = learner(epochs=3)(table)
    message = str(caught[0].message)
    assert message.startswith("1 image could not be read and was left out of training: ")
    assert [(s.index, s.source.endswith("missing.png")) for s in model.skipped] == [(3, True)]
    assert sum(model.class_counts) == len(table) - 1
    assert pickle.loads(pickle.dumps(model)).skipped == model.skipped


def test_one_unreadable_image_gets_the_prior_in_the_singular(fitted, colour_table):
    table = colour_table[[0, 20]].copy()
    with table.unlocked(table.metas):
        table.metas[0, table.domain.metas.index(table.domain["image"])] = "blue/gone.png"
    with pytest.warns(UserWarning, match="^1 image could not be read and gets the training"):
        fitted(table, fitted.Probs)


def test_new_images_from_another_folder_are_found(fitted, colour_dir, tmp_path):
    import shutil
    from orangecontrib.deepimage.core.images import find_images
    from orangecontrib.deepimage.data import image_table
    shutil.copytree(colour_dir, tmp_path / "elsewhere")
    moved = image_table(find_images(tmp_path / "elsewhere"), root=str(tmp_path / "elsewhere"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no image may be missing
        probs = fitted(moved, fitted.Probs)
    assert (probs.argmax(1) == moved.Y).mean() >= 0.9


def test_model_embeds_with_its_own_penultimate_layer(fitted, colour_table):
    import torch
    from orangecontrib.deepimage.core.images import load_image
    embedder = fitted.embedder(backend="torch", cache=True)
    assert embedder.image_size == 32 and fitted.weights_id in embedder.cache_key
    paths = image_paths(colour_table)[:3]
    vectors = embedder.embed(paths).embeddings
    with torch.no_grad():
        expected = fitted.net(torch.from_numpy(np.stack([load_image(p, (32, 32)) for p in paths])))
    np.testing.assert_allclose(vectors, expected.numpy(), rtol=1e-4, atol=1e-4)
    assert embedder.embed(paths).cached == 3
    assert pickle.loads(pickle.dumps(fitted)).weights_id == fitted.weights_id


def test_cross_validation_beside_logistic_regression(colour_table):
    from Orange.classification import LogisticRegressionLearner
    from Orange.evaluation import CA, CrossValidation
    embedded, _ = embeddings_table(colour_table, Embedder("squeezenet").embed(
        image_paths(colour_table)))
    ours = learner()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = CrossValidation(k=3, random_state=0)(embedded, [ours, LogisticRegressionLearner()])
    assert results.failed == [False, False]
    scores = CA(results)
    assert scores[0] >= 0.85 and scores[1] >= 0.85
    assert not np.isnan(results.probabilities).any()


class EvaluationTask:
    """What Orange's TaskState offers a worker: a flag the GUI thread raises."""

    def __init__(self):
        self.requested = False

    def is_interruption_requested(self) -> bool:
        return self.requested


def test_a_cancelled_evaluation_stops_the_learner_within_a_batch(colour_table):
    """Test & Score gives Orange's sampler a progress callback that closes over its task
    and raises only between folds; the learner finds the task and stops per batch."""
    from Orange.evaluation import CrossValidation
    task, batches = EvaluationTask(), []

    def progress_callback(share):  # Test & Score's, as in OWTestAndScore.__submit
        if task.is_interruption_requested():
            raise KeyboardInterrupt  # stands in for Test & Score's UserInterrupt

    def batch_done(done, total):
        batches.append(done)
        if len(batches) == 3:
            task.requested = True  # the user cancels during the first fold

    slow = learner(mode="scratch", epochs=60, patience=60, batch_size=2)
    slow.progress_callback = batch_done
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(KeyboardInterrupt):
            CrossValidation(k=2, random_state=0)(with_feature(colour_table), [slow],
                                                 callback=progress_callback)
    assert len(batches) == 3  # not one more batch: 60 epochs would be hundreds


def test_no_task_is_found_where_none_runs():
    """A Mock answers any attribute: it must not be taken for a task."""
    from unittest import mock
    from orangecontrib.deepimage.learner import caller_interruption
    state = mock.Mock()  # noqa: F841  (a local the search sees)
    assert caller_interruption() is None


def with_feature(table):
    return table.add_column(ContinuousVariable("brightness"), np.arange(len(table), dtype=float))
