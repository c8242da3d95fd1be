"""run_training, the Trainer widget's work, without a GUI: real SqueezeNet at 32 px."""
import threading
from unittest.mock import Mock

import numpy as np
import pytest
from Orange.data import ContinuousVariable, Domain, Table

from orangecontrib.deepimage.core.cancel import Cancelled
from orangecontrib.deepimage.core.train import EpochRecord
from orangecontrib.deepimage.learner import ImageClassifierLearner, ImageClassifierModel
from orangecontrib.deepimage.trainer_job import check_data, run_training, summary
from trainer_images import colour_table


def mock_state():
    """A TaskState stand-in that records what run_training reports."""
    state = Mock()
    state.is_interruption_requested.return_value = False
    return state


def small_learner(mode="scratch", epochs=3, **options):
    return ImageClassifierLearner("squeezenet", mode, epochs=epochs, image_size=32,
                                  batch_size=8, **options)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """16 readable images in two classes, one broken file, and a row without a class."""
    data = colour_table(tmp_path_factory.mktemp("training"), broken=True)
    data = data.copy()
    with data.unlocked(data.Y):
        data.Y[-1] = np.nan
    return data


def test_run_training_reports_epochs_progress_and_returns_the_model(table):
    state = mock_state()
    learner = small_learner(epochs=3, patience=10)
    outcome = run_training(table, learner, state)

    model = outcome.model
    assert isinstance(model, ImageClassifierModel)
    assert not outcome.cancelled
    records = [c.args[0] for c in state.set_partial_result.call_args_list]
    assert all(isinstance(r, EpochRecord) for r in records)
    assert [r.epoch for r in records] == [1, 2, 3]
    assert tuple(records) == model.history
    values = [c.args[0] for c in state.set_progress_value.call_args_list]
    assert values == sorted(values) and values[-1] == pytest.approx(100)
    assert len(values) > 3  # per batch, not per epoch
    # the broken image and the unlabelled row are counted, not trained on
    assert (outcome.rows, outcome.skipped, outcome.unlabelled) == (len(table), 1, 1)
    assert [table[s.index]["image"] for s in model.skipped] == ["blue/broken.png"]
    assert sum(model.class_counts) == len(table) - 2
    text = summary(outcome)
    assert f"Best epoch {model.best_epoch} of 3" in text
    assert "1 image could not be read" in text and "1 row without a class" in text
    probs = model(table, model.Probs)
    assert probs.shape == (len(table), 2) and not np.isnan(probs).any()
    # the caller's learner gets no callbacks (it may be an output of the widget)
    assert learner.epoch_callback is None and learner.should_stop is None
    assert model.progress_callback is None and model.should_stop is None


@pytest.mark.parametrize("mode", ["last-layer", "fine-tune"])
def test_progress_is_the_engines_share_of_one_total(table, mode, monkeypatch):
    """The engine's total is fixed from the start, so the percentage is done / total:
    no phase gets a made-up share, and loading moves the bar too."""
    from orangecontrib.deepimage.core import train
    calls = []
    real = train.train_classifier

    def recording(*args, progress, **kw):
        return real(*args, progress=lambda d, t: (calls.append((d, t)), progress(d, t)), **kw)

    monkeypatch.setattr(train, "train_classifier", recording)
    state = mock_state()
    run_training(table, small_learner(mode, epochs=3, head_epochs=2), state)
    values = [c.args[0] for c in state.set_progress_value.call_args_list]
    assert len({t for _, t in calls}) == 1
    assert values == pytest.approx([100 * d / t for d, t in calls])
    assert 0 < values[0] < values[-1] == pytest.approx(100)


def test_stop_event_keeps_the_best_model_so_far(table):
    stop = threading.Event()
    state = mock_state()
    state.set_partial_result.side_effect = lambda record: stop.set()  # after epoch 1
    outcome = run_training(table, small_learner(epochs=20, patience=20), state, stop=stop)

    assert outcome.cancelled
    assert outcome.epochs == 1 and outcome.model.best_epoch == 1
    assert outcome.best is outcome.model.history[0]
    assert summary(outcome).split(": ")[0] == "Best epoch 1 of 1"
    assert "Cancelled after" in summary(outcome)


def test_stop_before_the_first_epoch_raises_cancelled(table):
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        run_training(table, small_learner(), mock_state(), stop=stop)


def test_interruption_of_the_task_stops_training(table):
    state = mock_state()
    state.is_interruption_requested.return_value = True
    with pytest.raises(Cancelled):
        run_training(table, small_learner(), state)


def test_unusable_tables_are_refused_with_a_reason(table):
    no_class = table.transform(Domain([], None, table.domain.metas))
    no_images = table.transform(Domain([], table.domain.class_var,
                                       [v for v in table.domain.metas if v.name != "image"]))
    one_class = table[:5]
    assert "categorical target" in check_data(no_class)
    assert "column of images" in check_data(no_images)
    assert "at least two classes" in check_data(one_class)
    assert check_data(table) is None
    for data in (no_class, no_images, one_class):
        with pytest.raises(ValueError):
            run_training(data, small_learner(), mock_state())


def test_features_in_x_are_ignored(table):
    """An Image Embedder table (features in X) trains like the Import Images table."""
    extra = Table.from_numpy(
        Domain(table.domain.attributes + tuple(
            ContinuousVariable(f"n{i}") for i in range(3)),
            table.domain.class_var, table.domain.metas),
        np.random.default_rng(0).random((len(table), 3)), table.Y, metas=table.metas)
    plain = run_training(table, small_learner(epochs=1, seed=3), mock_state()).model
    embedded = run_training(extra, small_learner(epochs=1, seed=3), mock_state()).model
    np.testing.assert_allclose(plain(table, plain.Probs), embedded(extra, embedded.Probs),
                               atol=1e-5)
