"""`deepimage train | evaluate | export`, run in-process as a user would type them."""
import json
import os
import pickle

import numpy as np
import pytest

from orangecontrib.deepimage.cli import main

FAST = ["--image-size", "32", "--epochs", "2", "--head-epochs", "5", "--batch-size", "8"]


@pytest.fixture(scope="module")
def trained(colour_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "colours.pkcls"
    assert main(["train", str(colour_dir), *FAST, "-o", str(path)]) == 0
    return path


def test_train_prints_epochs_and_writes_a_model_orange_loads(trained, colour_dir, capsys):
    from Orange.widgets.model.owloadmodel import OWLoadModel  # noqa: F401  (loads by pickle)
    from orangecontrib.deepimage.learner import ImageClassifierModel
    with open(trained, "rb") as f:
        model = pickle.load(f)
    assert isinstance(model, ImageClassifierModel)
    assert model.class_values == ("blue", "red") and model.image_size == 32
    # the summary of the run made by the fixture
    path = trained.with_name("again.pkcls")
    assert main(["train", str(colour_dir), *FAST, "-o", str(path), "--seed", "1"]) == 0
    err = capsys.readouterr().err
    assert "epoch   1 (head): train loss" in err and "(network)" in err
    assert "best epoch" in err and "validation accuracy" in err and path.is_file()
    # the truth about the gain: logistic regression on the same validation images
    assert "Logistic regression on the pretrained network's embeddings" in err


def test_train_with_a_time_budget_too_short_trains_the_last_layer_and_says_so(
        colour_dir, tmp_path, capsys):
    path = tmp_path / "quick.pkcls"
    assert main(["train", str(colour_dir), *FAST, "--time-budget", "0.00001",
                 "-o", str(path)]) == 0
    err = capsys.readouterr().err
    assert "only the last layer was trained" in err and "(network)" not in err
    assert main(["train", str(colour_dir), "--time-budget", "0"]) == 2
    assert "--time-budget must be above 0" in capsys.readouterr().err


def test_evaluate_json_compares_with_logistic_regression(tmp_path, write_colours, capsys):
    # three classes: F1 must be averaged over them, as Test & Score does
    write_colours(tmp_path, per_class=10, classes=("blue", "red", "green"))
    code = main(["evaluate", str(tmp_path), "--mode", "last-layer", "--image-size", "32",
                 "--epochs", "20", "--folds", "2", "--compare-logreg", "--json"])
    assert code == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # exactly one JSON object on stdout
    assert set(report) == {"Image classifier (SqueezeNet 1.1)", "logistic regression"}
    for scores in report.values():
        assert set(scores) == {"CA", "F1", "AUC"}
        assert all(0 <= value <= 1 for value in scores.values()), scores  # none is null
    assert report["Image classifier (SqueezeNet 1.1)"]["CA"] >= 0.8
    assert "Confusion matrix" in captured.err and "blue" in captured.err


def test_evaluate_prints_a_table_and_confusion_matrix(colour_dir, capsys):
    assert main(["evaluate", str(colour_dir), "--mode", "last-layer", "--image-size", "32",
                 "--epochs", "5", "--folds", "2"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    # progress on stderr, which is not a terminal here: a line per epoch and per fold
    err = captured.err.splitlines()
    assert [line for line in err if line.startswith("fold 1/2, epoch ")][0].startswith(
        "fold 1/2, epoch   1 (head): train loss")
    assert len([line for line in err if line.startswith("fold 2/2, epoch ")]) == 5
    finished = [line for line in err if " trained in " in line]
    assert [line.split(" trained in ")[0] for line in finished] == ["fold 1/2", "fold 2/2"]
    assert all("best epoch" in line for line in finished)
    assert out.splitlines()[0].split() == ["method", "CA", "F1", "AUC"]
    assert "rows: actual, columns: predicted" in out
    matrix = [line.split() for line in out.splitlines()
              if line.split()[:1] in (["blue"], ["red"]) and line.split()[-1].isdigit()]
    assert len(matrix) == 2
    assert sum(int(n) for row in matrix for n in row[1:]) == 32


def test_export_runs_in_onnxruntime_like_torch(trained, colour_dir, tmp_path):
    import onnx
    import onnxruntime
    import torch
    from orangecontrib.deepimage.core.images import find_images, load_image
    out = tmp_path / "colours.onnx"
    umask = os.umask(0o022)
    try:
        assert main(["export", str(trained), "--onnx", str(out)]) == 0
    finally:
        os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["deepimage.base_model"] == "squeezenet" and meta["deepimage.image_size"] == "32"
    assert json.loads(meta["deepimage.classes"]) == ["blue", "red"]
    assert meta["deepimage.tta"] == "5"
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    images = np.stack([load_image(p, (32, 32)) for p in find_images(colour_dir)[::5]])
    embedding, probs = session.run(["embedding", "probabilities"], {"images": images})
    model = pickle.loads(trained.read_bytes())
    with torch.no_grad():
        x = torch.from_numpy(images)
        expected_embedding = model.net(x).numpy()
        # the model predicts with 5 views (its tta), and so does the export
        from orangecontrib.deepimage.core.train.augment import tta_views
        expected_probs = torch.stack([torch.softmax(model.net.logits(v), 1)
                                      for v in tta_views(x, model.tta)]).mean(0).numpy()
    assert embedding.shape == (len(images), 512) and probs.shape == (len(images), 2)
    np.testing.assert_allclose(embedding, expected_embedding, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(probs, expected_probs, atol=1e-4)


@pytest.mark.parametrize("args,message", [
    (["train", "{dir}/nowhere"], "no such folder"),
    (["train", "{dir}", "--image-size", "20"], "at least 29 x 29"),
    (["train", "{dir}", "-o", "model.pkl"], "must end in .pkcls"),
    (["train", "{dir}", "--model", "vgg16", "--mode", "last-layer"], "vgg16-397923af.pth"),
    (["evaluate", "{dir}", "--folds", "1"], "at least 2"),
    (["export", "{dir}/nothing.pkcls", "--onnx", "x.onnx"], "no such file"),
])
def test_errors_say_what_to_do(colour_dir, capsys, args, message):
    assert main([a.format(dir=colour_dir) for a in args]) == 2
    assert message in capsys.readouterr().err


def test_one_class_folder_is_a_clear_error(tmp_path, capsys, write_colours):
    write_colours(tmp_path, per_class=3, classes=("red",))
    assert main(["train", str(tmp_path)]) == 2
    assert "one subfolder of images per class" in capsys.readouterr().err


def test_train_lists_every_unreadable_image(tmp_path, capsys, write_colours):
    write_colours(tmp_path, per_class=6)
    for name in ("a.png", "b.png", "c.png", "d.png"):
        (tmp_path / "red" / name).write_bytes(b"not a png")
    assert main(["train", str(tmp_path), *FAST, "-q"]) == 0
    err = capsys.readouterr().err
    left_out = [line for line in err.splitlines() if "left out" in line]
    assert len(left_out) == 4 and all(": " in line for line in left_out), err
    assert "on 12 images of 2 classes" in err and "; 4 images could not be read." in err


def test_quiet_prints_no_progress(colour_dir, capsys):
    assert main(["evaluate", str(colour_dir), "--mode", "last-layer", "--image-size", "32",
                 "--epochs", "2", "--folds", "2", "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "method" in captured.out


def test_train_chooses_the_image_size_from_the_images(colour_dir, tmp_path, capsys):
    """The colour squares are 40 px: they train at 80, not at SqueezeNet's 227, for five
    sixths of the network epochs asked for."""
    path = tmp_path / "auto.pkcls"
    assert main(["train", str(colour_dir), "--epochs", "6", "--head-epochs", "1",
                 "--batch-size", "8", "-o", str(path)]) == 0
    err = capsys.readouterr().err
    assert "Training at 80 px, 5 of 6 epochs (small images), chosen from the images " \
        "(their median side is 40 px)" in err
    model = pickle.loads(path.read_bytes())
    assert model.image_size == 80 and model.config.epochs == 5


def test_progress_is_a_bar_on_a_terminal():
    import io

    from orangecontrib.deepimage.cli.progress import TrainingProgress
    from orangecontrib.deepimage.core.train import EpochRecord
    stream = io.StringIO()
    progress = TrainingProgress(stream, folds=2, epoch_lines=False, bar=True)
    progress.start_fold(1)
    progress.progress(5, 10)
    progress.epoch(EpochRecord(1, "head", 0.9, 0.6, 0.7, 0.75, 1.0))
    progress.end_fold()
    progress.start_fold(2)
    progress.progress(10, 10)
    progress.close()
    text = stream.getvalue()
    assert "\r 25%|##" in text and "| fold 1/2" in text  # tqdm's bar, half of fold 1
    assert "\r100%|" in text and "| fold 2/2" in text
    assert "epoch 1 (head)  val acc 0.750" in text
    lines = text.split("\n")  # the bar is redrawn in place; lines go above it
    assert lines[0].endswith("fold 1/2 trained in 0 s: best epoch 1 of 1, validation "
                             "accuracy 0.750")
    assert "epoch   1 (head): train loss" not in text  # no epoch lines under a bar
    assert text.endswith("\n")
    quiet = io.StringIO()
    silent = TrainingProgress(quiet, quiet=True, bar=True)
    silent.progress(1, 2)
    silent.epoch(EpochRecord(1, "head", 0.9, 0.6, 0.7, 0.75, 1.0))
    silent.close()
    assert quiet.getvalue() == ""
