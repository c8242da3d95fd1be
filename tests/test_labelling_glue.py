"""The labelling session and its jobs, headless: labels keyed by image content and path,
a grown or rearranged folder, undo, class changes, the outputs and the Orange model."""
import copy
import os
import pickle
import shutil

import numpy as np
import pytest
from Orange.classification import LogisticRegressionLearner
from Orange.evaluation import CA, CrossValidation
from Orange.evaluation import TestOnTestData as OnTestData

from orangecontrib.deepimage.core.labelling.refit import RefitResult
from orangecontrib.deepimage.core.labelling.worker import RefitWorker
from orangecontrib.deepimage.embedder_job import EmbedderChoice, EmbedderPool
from orangecontrib.deepimage.labelling_jobs import (annotated_images, labelled_images,
                                                    run_prepare, run_refresh, status_text)
from orangecontrib.deepimage.labelling_model import (QuickImageLearner, QuickImageModel,
                                                     embedding_columns)
from orangecontrib.deepimage.labelling_session import (LabelSession, SessionError,
                                                       image_keys)

from labelling_data import digit_folder, embedded_table, true_classes
from widgets.tests_state import State


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digit_folder(tmp_path_factory.mktemp("labelling") / "digits", per_class=6)


@pytest.fixture
def folder(digits, tmp_path):
    return shutil.copytree(digits, tmp_path / "digits")


def session_for(table):
    session = LabelSession()
    session.attach(image_keys(table))
    return session


def test_keys_are_relative_paths_and_content_hashes(folder):
    table = embedded_table(folder)
    keys = image_keys(table, state=State())
    assert len(keys) == 60 and keys.paths[0] == "0/" + sorted(os.listdir(os.path.join(folder, "0")))[0]
    assert all(len(h) == 40 for h in keys.hashes) and len(set(keys.hashes)) == 60
    os.remove(os.path.join(folder, keys.paths[1]))  # unreadable: keyed by its path
    assert image_keys(table).key(1) == "path:" + keys.paths[1]


def test_labels_survive_a_grown_folder_and_moved_files(folder, digits):
    table = embedded_table(folder)
    session = session_for(table)
    truth = true_classes(table)
    rows = [0, 7, 13, 30]
    for row in rows:
        session.assign([row], truth[row])
    saved = session.to_settings()
    # the folder grows (a new digit), one file is renamed and one moved to another folder
    extra = os.path.join(folder, "9", "new-digit.png")
    shutil.copy(os.path.join(folder, "8", sorted(os.listdir(os.path.join(folder, "8")))[0]),
                extra)
    keys = image_keys(table)
    renamed, moved = keys.paths[7], keys.paths[13]
    os.rename(os.path.join(folder, renamed), os.path.join(folder, "0", "renamed.png"))
    os.makedirs(os.path.join(folder, "elsewhere"))
    os.rename(os.path.join(folder, moved), os.path.join(folder, "elsewhere", "moved.png"))
    grown = embedded_table(folder)
    restored = LabelSession.from_settings(saved)
    restored.attach(image_keys(grown))
    labels = restored.row_labels()
    grown_keys = image_keys(grown)
    assert len(grown) == 61 and sum(label is not None for label in labels) == 4
    by_path = dict(zip(grown_keys.paths, labels))
    assert by_path["0/renamed.png"] == truth[7]
    assert by_path["elsewhere/moved.png"] == truth[13]
    assert by_path[keys.paths[0]] == truth[0] and by_path[keys.paths[30]] == truth[30]
    assert restored.orphans() == 0


def test_labels_of_missing_images_are_kept_and_counted(folder):
    table = embedded_table(folder)
    session = session_for(table)
    session.assign([0, 1], "zero")
    fewer = table[2:]
    session.attach(image_keys(fewer))
    assert session.orphans() == 2 and not any(session.row_labels())
    assert len(session.to_settings()["labels"]) == 2  # still saved
    session.attach(image_keys(table))
    assert session.row_labels()[:2] == ["zero", "zero"] and session.orphans() == 0


def test_an_edited_file_keeps_its_label_by_path(folder):
    table = embedded_table(folder)
    session = session_for(table)
    session.assign([3], "0")
    path = os.path.join(folder, image_keys(table).paths[3])
    with open(path, "ab") as f:
        f.write(b"\0")  # new content, same path
    session.attach(image_keys(table))
    assert session.row_labels()[3] == "0"
    session.assign([3], "zero")  # stored again under its new content, once
    assert session.row_labels()[3] == "zero" and len(session.records) == 1


def test_duplicate_images_share_their_label(folder):
    first = os.path.join(folder, "1", sorted(os.listdir(os.path.join(folder, "1")))[0])
    shutil.copy(first, os.path.join(folder, "1", "copy.png"))
    table = embedded_table(folder)
    session = session_for(table)
    keys = session.keys
    row = keys.paths.index("1/copy.png")
    session.assign([row], "one")
    twin = [r for r, h in enumerate(keys.hashes) if h == keys.hashes[row] and r != row]
    assert len(twin) == 1 and session.row_labels()[twin[0]] == "one"


def test_undo_restores_every_change(folder):
    session = session_for(embedded_table(folder))
    states = [session.to_settings()]
    session.assign([0, 1, 2], "a")
    session.assign([3, 4], "b")
    session.assign([2], "b")
    session.add_class("c")
    session.rename_class("a", "alpha")
    session.merge_classes(["b"], "alpha")
    session.unlabel([0])
    with pytest.raises(SessionError, match="merge"):
        session.rename_class("alpha", "c")
    assert session.row_labels()[:5] == [None, "alpha", "alpha", "alpha", "alpha"]
    assert session.classes == ["alpha", "c"]
    assert session.undo_text() == "unlabel 1"
    undone = []
    while session.can_undo():
        undone.append(session.undo())
    assert undone[-1] == "label 3 as a" and len(undone) == 7
    assert session.to_settings() == states[0] and session.undo() == ""


def test_class_changes_check_names(folder):
    session = session_for(embedded_table(folder))
    assert session.add_class("  cats ") == "cats"
    for bad in ("", "cats"):
        with pytest.raises(SessionError):
            session.add_class(bad)
    session.assign([0], "cats")
    with pytest.raises(SessionError, match="labels 1 images"):
        session.remove_class("cats")
    session.add_class("dogs")
    session.remove_class("dogs")
    assert session.merge_classes(["cats"], "pets") == 1
    assert session.classes == ["pets"] and session.row_labels()[0] == "pets"
    with pytest.raises(SessionError):
        session.merge_classes(["nope"], "pets")


def test_starts_from_the_class_column_once(folder):
    table = embedded_table(folder, drop_class=False)
    session = session_for(table)
    classes = list(table.domain.class_var.values)
    values = [classes[int(v)] for v in table.Y]
    assert session.seed_from(values, classes) == 60
    assert session.row_labels() == true_classes(table) and session.classes == classes
    assert session.seed_from(values, classes) == 0  # once
    session.undo()
    assert not any(session.row_labels())


def test_settings_round_trip_and_newer_layouts(folder):
    table = embedded_table(folder)
    session = session_for(table)
    session.assign([0, 5], "x")
    session.remember_network(table.X, "SqueezeNet 1.1 (on this computer)")
    saved = pickle.loads(pickle.dumps(session.to_settings()))
    restored = LabelSession.from_settings(saved)
    restored.attach(image_keys(table))
    assert restored.row_labels() == session.row_labels() and restored.classes == ["x"]
    with pytest.raises(SessionError, match="newer version"):
        LabelSession.from_settings({"version": 99})
    assert LabelSession.from_settings(None).classes == []


def test_another_network_is_recognised(folder):
    table = embedded_table(folder)
    session = session_for(table)
    session.assign([0, 1], "x")
    session.remember_network(table.X, "SqueezeNet 1.1")
    assert session.network_change(table.X, "SqueezeNet 1.1") == ""
    assert "4 numbers per image" in session.network_change(table.X[:, :4])
    changed = session.network_change(table.X * 2 + 1, "VGG-16")
    assert "SqueezeNet 1.1" in changed and "VGG-16" in changed
    assert "still belong to the same images" in changed


def test_refresh_predicts_suggests_and_checks(folder):
    table = embedded_table(folder)
    truth = true_classes(table)
    classes = [str(d) for d in range(10)]
    labels = [None] * len(table)
    for row in range(0, 60, 2):  # three of each digit
        labels[row] = truth[row]
    labels[0] = "7"  # a wrong label
    features = embedding_columns(table.domain)
    refresh = run_refresh(table.X, labels, classes, features, State(), n_suggest=10)
    assert len(refresh.suggestions) == 10
    assert all(labels[row] is None for row in refresh.suggestions)
    assert refresh.probabilities.shape == (60, 10)
    assert np.allclose(refresh.probabilities.sum(axis=1), 1)
    unlabelled = [r for r in range(60) if labels[r] is None]
    accuracy = np.mean([classes[refresh.predicted[r]] == truth[r] for r in unlabelled])
    assert accuracy > 0.5  # ten classes: chance is 0.1
    assert 0 <= refresh.accuracy.mean <= 1 and refresh.accuracy.n_labels == 30
    low, high = refresh.accuracy.low, refresh.accuracy.high
    assert status_text(30, 10, refresh) == ("30 labelled in 10 classes; estimated accuracy "
                                            f"{refresh.accuracy.mean:.2f} ({low:.2f}-"
                                            f"{high:.2f})")
    assert 0 in refresh.issues
    # the Orange model predicts what the refresh predicted
    probs = refresh.model(table, refresh.model.Probs)
    assert np.allclose(probs, refresh.probabilities)
    # the core result's fields and the Orange model, in one picklable value
    assert isinstance(refresh, RefitResult) and refresh.quick is not None
    again = pickle.loads(pickle.dumps(refresh))
    assert again.issues == refresh.issues and again.accuracy == refresh.accuracy
    assert np.array_equal(again.predicted, refresh.predicted)
    assert np.allclose(again.model(table, again.model.Probs), refresh.probabilities)


def test_refresh_with_few_labels_and_nan_embeddings(folder):
    table = embedded_table(folder)
    X = table.X.copy()
    X[5] = np.nan
    features = embedding_columns(table.domain)
    empty = run_refresh(X, [None] * 60, [], features, State(), n_suggest=10)
    assert empty.model is None and len(empty.suggestions) == 10 and 5 not in empty.suggestions
    labels = [None] * 60
    labels[0] = labels[1] = "a"
    one = run_refresh(X, labels, ["a", "b"], features, State())
    assert one.issues == [] and one.accuracy.mean is None
    assert status_text(2, 1, one) == \
        "2 labelled in 1 class; accuracy cannot be estimated yet: " + one.accuracy.reason
    assert (one.predicted[np.arange(60) != 5] == 0).all() and one.predicted[5] == -1
    assert any("one class" in note for note in one.notes)
    labels[5] = "b"  # a label on a row without an embedding
    kept = run_refresh(X, labels, ["a", "b"], features, State())
    assert any("NaN" in note for note in kept.notes)
    with pytest.raises(ValueError, match="token"):  # else the worker had no embeddings
        run_refresh(X, labels, ["a", "b"], features, State(),
                    worker=RefitWorker(use_process=False))


def test_outputs_and_model_in_orange(folder):
    table = embedded_table(folder, drop_class=False)
    truth = true_classes(table)
    classes = [str(d) for d in range(10)]
    labels = [truth[r] if r % 2 == 0 else None for r in range(60)]
    features = embedding_columns(table.domain)
    refresh = run_refresh(table.X, labels, classes, features, State(), class_name="category")
    labelled = labelled_images(table, labels, classes)
    # named as the input's class, which is kept as a meta
    assert len(labelled) == 30 and labelled.domain.class_var.name == "category"
    assert labelled.domain.metas[-1].name == "category (given)"
    assert np.array_equal(labelled.get_column("category (given)"), table.Y[::2])
    assert [classes[int(v)] for v in labelled.Y] == truth[::2]
    assert labelled.ids.tolist() == table.ids[::2].tolist()
    everything = annotated_images(table, labels, classes, refresh)
    assert len(everything) == 60 and everything.domain.class_var.name == "category"
    names = [v.name for v in everything.domain.metas[-3:]]
    assert names == ["label", "prediction", "confidence"]
    label_col = everything.get_column("label")
    assert np.isnan(label_col[1::2]).all() and not np.isnan(label_col[::2]).any()
    assert (everything.get_column("confidence") > 0).all()
    assert labelled_images(table, [None] * 60, classes) is None
    # Test & Score: the quick learner beside Logistic Regression on the labelled images
    learner = QuickImageLearner()
    results = CrossValidation(k=3)(labelled, [learner, LogisticRegressionLearner()])
    assert (CA(results) > 0.4).all()
    # test on the unlabelled rows, with their true class
    rest = table[1::2]
    model = learner(labelled)
    assert isinstance(model, QuickImageModel)
    tested = OnTestData()(labelled, rest, [learner])
    assert CA(tested)[0] > 0.4
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert np.allclose(clone(rest, clone.Probs), model(rest, model.Probs))
    assert learner.incompatibility_reason(table[:, table.domain.metas].domain)
    # the widget's model predicts the input's class by name, even in another order
    assert np.array_equal(refresh.model(rest), refresh.predicted[1::2])
    shuffled = labelled_images(table, labels, classes[::-1])
    reverse = learner(shuffled)
    assert np.array_equal(reverse(rest), model(rest))


@pytest.mark.slow
def test_prepare_embeds_images_itself(folder):
    from orangecontrib.deepimage.core.images import find_images
    from orangecontrib.deepimage.data import image_table
    small = image_table(find_images(os.path.join(folder, "3"))[:3] +
                        find_images(os.path.join(folder, "4"))[:3], folder)
    os.remove(os.path.join(folder, small.metas[0, 1]))  # one cannot be read
    prepared = run_prepare(small, EmbedderChoice(), EmbedderPool(), State())
    assert len(prepared.table) == 5 and len(prepared.skipped) == 1
    assert prepared.embeddings.shape == (5, 512) and prepared.network.startswith("SqueezeNet")
    assert len(prepared.keys) == 5
    embedded = run_prepare(prepared.table, EmbedderChoice(), EmbedderPool(), State())
    assert embedded.network == "" and np.allclose(embedded.embeddings, prepared.embeddings)
    with pytest.raises(ValueError, match="image column"):
        run_prepare(small[:, small.domain.metas[:1]], EmbedderChoice(), EmbedderPool(),
                    State())
