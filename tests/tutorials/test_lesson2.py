"""Lesson 2 (tutorials/lesson2_classification.*): the workflow names existing widgets and
channels, stores the lesson's settings (test_workflows checks it stores no path of the
author's machine), opens with the misclassified cells of Confusion Matrix selected, and runs; the scripted equivalent
evaluates both methods on every image and lists exactly the misclassified ones."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest


from orangecontrib.deepimage.data import image_paths
from orangecontrib.deepimage.tutorials import lesson2_classification as lesson
from orangecontrib.deepimage.tutorials.make_digits import write_digits

from workflow_helpers import (TUTORIALS, links_by_title, node_settings, opened_workflow,
                              process_until)
from workflow_helpers import parse as parse_workflow

WORKFLOW = TUTORIALS / "lesson2_classification.ows"
TITLES = ["Import Images", "Image Embedder", "Logistic Regression", "Trainer",
          "Test and Score", "Confusion Matrix", "Image Viewer"]
DIGITS = tuple(str(d) for d in range(10))


def parse(path=WORKFLOW):
    return parse_workflow(path)


def settings():
    return node_settings(parse())


def test_workflow_names_existing_widgets_and_channels():
    parsed = parse()
    assert [n.title for n in parsed.nodes] == TITLES
    assert links_by_title(parsed) == [
        ("Import Images", "Data", "Image Embedder", "Images"),
        ("Image Embedder", "Embeddings", "Test and Score", "Data"),
        # this order makes Logistic Regression learner 0 and the Trainer learner 1
        ("Logistic Regression", "Learner", "Test and Score", "Learner"),
        ("Trainer", "Learner", "Test and Score", "Learner"),
        ("Test and Score", "Evaluation Results", "Confusion Matrix", "Evaluation Results"),
        ("Confusion Matrix", "Selected Data", "Image Viewer", "Data"),
        # the Trainer also learns from all the digits, for Image Viewer's heatmaps
        ("Import Images", "Data", "Trainer", "Data"),
        ("Trainer", "Model", "Image Viewer", "Model")]
    assert parsed.title.startswith("Lesson 2") and "come with the add-on" in parsed.description
    notes = [a for a in parsed.annotations if a.type == "text"]
    assert len(notes) == 6 and all(a.params.text for a in notes)
    assert "Where does the network look?" in notes[-1].params.text


def test_workflow_stores_the_lessons_settings():
    """The settings the lesson note explains, which are also the script's defaults."""
    from Orange.widgets.evaluate.owtestandscore import OWTestAndScore
    props = settings()
    assert props["Image Embedder"]["model_key"] == "local:squeezenet"
    assert "token" not in props["Image Embedder"]
    trainer = props["Trainer"]
    assert {k: trainer[k] for k in ("network", "mode", "epochs", "lower_size", "image_size",
                                    "batch_size", "learning_rate", "flip", "device")} == dict(
        network=lesson.NETWORK, mode=lesson.MODE, epochs=lesson.EPOCHS, lower_size=True,
        image_size=lesson.IMAGE_SIZE, batch_size=lesson.BATCH_SIZE,
        learning_rate=lesson.LEARNING_RATE, flip=lesson.FLIP, device=lesson.DEVICE)
    assert not trainer["flip"]  # a mirrored digit is not a digit
    scores = props["Test and Score"]
    assert scores["resampling"] == OWTestAndScore.KFold and scores["cv_stratified"]
    assert OWTestAndScore.NFolds[scores["n_folds"]] == lesson.FOLDS == 3
    assert scores["comparison_criterion"] == 1  # CA (after AUC) in Test and Score's list
    # a learner built from the stored settings trains as the script's does
    from orangecontrib.deepimage.learner import ImageClassifierLearner
    stored = ImageClassifierLearner(
        trainer["network"], trainer["mode"], epochs=trainer["epochs"],
        image_size=trainer["image_size"], batch_size=trainer["batch_size"],
        learning_rate=trainer["learning_rate"], flip=trainer["flip"], device=trainer["device"])
    assert stored.config() == lesson.make_learners()[1].config()


def test_confusion_matrix_opens_with_the_misclassified_cells_selected():
    matrix = settings()["Confusion Matrix"]
    assert matrix["selected_learner"] == [1]  # the Trainer's fine-tuned network
    (context,) = matrix["context_settings"]
    assert tuple(context.classes) == DIGITS  # restored for the digits' classes
    cells = {(i, j) for i in range(10) for j in range(10) if i != j}
    assert context.values["selection"] == cells  # what "Select Misclassified" selects
    assert pickle.loads(pickle.dumps(matrix))  # the workflow stores it as a pickle


def test_image_viewer_opens_titled_by_the_networks_predictions():
    """Its own stored context matches perfectly, so it wins over contexts that earlier
    Image Viewers (lesson 1's, titled by the class) left in Orange's saved defaults."""
    viewer = settings()["Image Viewer"]
    assert viewer["show_heatmaps"]  # "Show where the network looks" is ticked
    (context,) = viewer["context_settings"]
    assert context.values["title_attr"] == ("category(Image classifier (SqueezeNet 1.1))",
                                            101)  # a categorical meta column


def test_script_evaluates_both_methods_on_every_image(tmp_path, capsys):
    folder = tmp_path / "digits"
    write_digits(str(folder), per_class=5)
    result = lesson.run(str(folder), per_class=4, folds=2, epochs=1)
    assert sorted(os.listdir(folder)) == list(DIGITS)
    assert len(result.data) == 40 and result.data.X.shape == (40, 512)
    results = result.results
    assert [m.name for m in result.methods] == ["Logistic Regression",
                                               "Image classifier (SqueezeNet 1.1)"]
    assert not any(results.failed)
    # every image predicted once by each method, by a model that did not train on it
    assert sorted(results.row_indices) == list(range(40))
    assert results.predicted.shape == (2, 40) and not np.isnan(results.predicted).any()
    assert np.allclose(results.probabilities.sum(axis=2), 1)
    paths = np.array(image_paths(result.data))[results.row_indices]
    for i, method in enumerate(result.methods):
        wrong = results.actual != results.predicted[i]
        assert sorted(m.path for m in method.mistakes) == sorted(paths[wrong])
        assert all(m.actual != m.predicted and os.path.basename(os.path.dirname(m.path))
                   == m.actual for m in method.mistakes)
        matrix = result.confusion_matrix(i)
        assert matrix.sum() == 40 and matrix.trace() == 40 - len(method.mistakes)
        assert method.ca == pytest.approx(1 - len(method.mistakes) / 40)
        assert 0 <= method.auc <= 1 and 0 <= method.f1 <= 1
    # SqueezeNet's numbers tell digits apart even from 2 examples of each (chance: 10 %)
    assert result.methods[0].ca > 0.3
    text = lesson.report(result)
    assert "Confusion matrix of Logistic Regression" in text
    assert f"predicted {40 - len(result.methods[1].mistakes)} of 40" in text
    # step 5: the network trained on all the images shows where it looks on the mistakes
    mistakes = [m.path for m in result.methods[1].mistakes]
    records = lesson.explain_mistakes(result, str(tmp_path / "heatmaps"), epochs=1)
    assert [r["path"] for r in records] == mistakes
    for record in records:
        assert record["predicted"] in DIGITS and 0 <= record["peak_x"] < 64
        assert os.path.isfile(record["overlay"])
    assert f"on the {len(records)} mistakes" in lesson.heatmaps_text(
        result, records, str(tmp_path / "heatmaps"))


def test_script_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        lesson.main(["--folds", "1"])
    assert "--folds must be at least 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        lesson.main(["--per-class", "2", "--folds", "3"])
    # both ways of starting it in a shell find the package
    for command in ([sys.executable, str(WORKFLOW.with_suffix(".py")),
                     "--help"],
                    [sys.executable, "-m",
                     "orangecontrib.deepimage.tutorials.lesson2_classification", "--help"]):
        done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert "--per-class" in done.stdout and "--epochs" in done.stdout


def test_loaded_workflow_runs_to_the_misclassified_images(tmp_path):
    """Copied with a few digits to another folder, the workflow runs as saved: Test and
    Score cross-validates both learners, and Image Viewer receives the images the
    Trainer's network got wrong, selected by the stored Confusion Matrix selection."""
    write_digits(str(tmp_path / "digits"), per_class=3)  # 3 folds: 1 of each digit per fold
    with opened_workflow(WORKFLOW, tmp_path) as (app, scheme, widgets):
        matrix, viewer = widgets["Confusion Matrix"], widgets["Image Viewer"]
        process_until(app, lambda: matrix.results is not None
                      and not scheme.signal_manager.has_pending(), 180)
        for title, widget in widgets.items():
            assert not widget.Error.active, (title, [str(m) for m in widget.Error.active])
        assert widgets["Import Images"].current_folder() == str(tmp_path / "digits")
        results = matrix.results
        assert results is not None and results.predicted.shape == (2, 30)
        assert matrix.learners == ["Logistic Regression", "Image classifier (SqueezeNet 1.1)"]
        assert matrix.selected_learner == [1] and len(matrix.selection) == 90
        wrong = results.row_indices[results.actual != results.predicted[1]]
        if len(wrong):
            assert viewer.data is not None
            assert sorted(viewer.data.ids) == sorted(results.data.ids[wrong])
            # titled by the network's prediction, which differs from the class
            predicted = viewer.data.get_column(viewer.title_attr)
            assert viewer.title_attr.name == "category(Image classifier (SqueezeNet 1.1))"
            assert (predicted != viewer.data.Y).all()
            # the Trainer's network (trained on all the digits) explains what is shown
            viewer.show()
            process_until(app, lambda: viewer.model is not None and viewer.task is None
                          and viewer.heatmaps.known(viewer.paths[0]) is not None, 180)
            first = viewer.heatmaps.known(viewer.paths[0])
            assert first.predicted in DIGITS and first.size == (64, 64)
            assert viewer.model.class_values == DIGITS
            assert not viewer.Error.explain_failed.is_shown()
        else:  # nothing misclassified: nothing selected
            assert viewer.data is None
