"""Lesson 5 (tutorials/lesson5_labelling.*): the workflow names existing widgets and
channels and stores the lesson's settings (Label Images starts empty, on "Next to
label"; Test and Score tests on the test data); the scripted twin labels the images the
widget suggests, as the folders answer, and evaluates as Test and Score does; the
loaded workflow runs with labels given in Label Images."""
import subprocess
import sys

import numpy as np
import pytest

from orangecontrib.deepimage.tutorials import lesson5_labelling as lesson
from orangecontrib.deepimage.tutorials.make_digits import write_digits

from workflow_helpers import (TUTORIALS, links_by_title, node_settings, opened_workflow,
                              process_until)
from workflow_helpers import parse

WORKFLOW = TUTORIALS / "lesson5_labelling.ows"


def test_workflow_names_existing_widgets_and_channels():
    parsed = parse(WORKFLOW)
    assert [n.title for n in parsed.nodes] == ["Import Images", "Image Embedder",
                                               "Label Images", "Logistic Regression",
                                               "Test and Score"]
    assert links_by_title(parsed) == [
        ("Import Images", "Data", "Image Embedder", "Images"),
        ("Image Embedder", "Embeddings", "Label Images", "Images"),
        ("Label Images", "Labelled Images", "Test and Score", "Data"),
        ("Image Embedder", "Embeddings", "Test and Score", "Test Data"),
        ("Logistic Regression", "Learner", "Test and Score", "Learner")]
    assert parsed.title.startswith("Lesson 5:") and "come with the add-on" in \
        parsed.description
    assert len([a for a in parsed.annotations if a.type == "text"]) == 3


def test_workflow_stores_the_lessons_settings():
    from Orange.widgets.evaluate.owtestandscore import OWTestAndScore
    from orangecontrib.deepimage.widgets.owlabelimages import NEXT
    props = node_settings(parse(WORKFLOW))
    label = props["Label Images"]
    assert label["labels"] == {} and label["view"] == NEXT  # the student labels
    assert label["network"] == "squeezenet"
    assert props["Image Embedder"]["model_key"] == "local:squeezenet"
    assert props["Test and Score"]["resampling"] == OWTestAndScore.TestOnTest


def test_script_labels_the_suggested_images(tmp_path):
    folder = tmp_path / "digits"
    write_digits(str(folder), per_class=6)
    result = lesson.run(str(folder), n_labels=12, every=4)
    assert len(result.data) == 60 and len(result.labelled) == 12
    assert [s.labelled for s in result.steps] == [4, 8, 12]
    # the diverse first picks meet many digits (ten classes of six images each)
    assert result.steps[-1].classes >= 6
    # every label is the folder's answer (the folders' class is kept beside it)
    labelled = result.labelled
    folders = labelled.domain["category (given)"]
    assert [labelled.domain.class_var.str_val(v) for v in labelled.Y] == \
        [folders.str_val(v) for v in labelled.get_column(folders)]
    last = result.steps[-1]  # 12 labels in about 8 classes: too few to estimate
    assert last.estimate is None or last.low <= last.estimate <= last.high
    assert 0.3 < last.actual <= 1  # ten classes: chance is 0.1
    assert 0.3 < result.test_score <= 1 and 0 < result.random_score <= 1
    text = lesson.report(result)
    assert ("estimated accuracy" in text or "too few labels" in text) and "reads" in text \
        and "at random" in text


@pytest.mark.slow
def test_the_lessons_30_suggestions_meet_every_digit_and_beat_random_picks():
    """The lesson itself (500 digits, SqueezeNet): the 30 suggested labels meet all ten
    digits, Test and Score reads more digits right after them than after 30 random
    labels (the mean of five draws), and the status line's estimate appears once ten
    labels are in classes with two or more, its interval holding the estimate."""
    result = lesson.run()
    assert result.steps[-1].labelled == 30 and result.steps[-1].classes == 10
    assert result.test_score > result.random_score
    shown = [s for s in result.steps if s.estimate is not None]
    assert shown and shown[-1].labelled == 30
    assert all(s.low <= s.estimate <= s.high for s in shown)


def test_script_command_line(tmp_path, capsys):
    import pytest
    with pytest.raises(SystemExit):
        lesson.main(["--labels", "1"])
    assert "--labels must be at least 2" in capsys.readouterr().err
    for command in ([sys.executable, str(WORKFLOW.with_suffix(".py")), "--help"],
                    [sys.executable, "-m",
                     "orangecontrib.deepimage.tutorials.lesson5_labelling", "--help"]):
        done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert "--labels" in done.stdout


def test_loaded_workflow_runs_with_labels_given_in_the_widget(tmp_path):
    """Copied with a few digits to another folder, the workflow runs; labels given in
    Label Images reach Test and Score, which tests Logistic Regression on all images."""
    write_digits(str(tmp_path / "digits"), per_class=3)
    with opened_workflow(WORKFLOW, tmp_path) as (app, scheme, widgets):
        label, scores = widgets["Label Images"], widgets["Test and Score"]
        assert process_until(app, lambda: label.prepared is not None
                             and label.task is None, 180)
        assert label.view == 1  # Next to label
        data = label.prepared.table
        truth = [data.domain.class_var.values[int(v)] for v in data.Y]
        def results():
            done = [slot.results.value for slot in scores.learners.values()
                    if slot.results is not None and slot.results.success]
            return done[0] if done else None

        for row in range(0, 30, 2):  # 15 labels: 1 or 2 of each digit
            label.label_rows([row], truth[row])
        assert process_until(app, lambda: label.task is None and not label._refit_timer.isActive()
                      and not scheme.signal_manager.has_pending()
                      and results() is not None and len(results().row_indices) == 30, 180)
        for title, widget in widgets.items():
            assert not widget.Error.active, (title, [str(m) for m in widget.Error.active])
        evaluated = results()
        assert evaluated.predicted.shape == (1, 30)
        accuracy = np.mean(evaluated.predicted[0] == evaluated.actual)
        assert accuracy > 0.3
