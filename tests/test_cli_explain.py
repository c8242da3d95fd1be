"""`deepimage explain`: overlay PNGs and JSON, as a user runs it."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from orangecontrib.deepimage.cli import main
from trainer_images import colour_table


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A SqueezeNet last layer trained on blue and red squares, saved as Save Model does."""
    from orangecontrib.deepimage.learner import ImageClassifierLearner
    root = tmp_path_factory.mktemp("explain-cli")
    table = colour_table(root / "train", per_class=6, size=40)
    model = ImageClassifierLearner("squeezenet", "last-layer", epochs=20, image_size=64,
                                   validation_fraction=0, device="cpu")(table)
    path = root / "colours.pkcls"
    with open(path, "wb") as f:
        pickle.dump(model, f)
    return path


@pytest.fixture
def pictures(tmp_path):
    """Two pictures of the same name in two folders (one 300 x 120), and a broken file."""
    rng = np.random.default_rng(1)
    for folder, (w, h) in (("a", (300, 120)), ("b", (50, 80))):
        (tmp_path / folder).mkdir()
        pixels = rng.normal((190, 50, 40), 30, (h, w, 3)).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / folder / "cell.png")
    (tmp_path / "b" / "broken.png").write_bytes(b"no")
    return tmp_path


def test_overlays_and_json(model_file, pictures, tmp_path, capsys):
    out = tmp_path / "overlays"
    assert main(["explain", str(model_file), str(pictures / "a"), str(pictures / "b"),
                 "-o", str(out), "--json", "--max-side", "200"]) == 0
    captured = capsys.readouterr()
    records = json.loads(captured.out)
    assert [os.path.relpath(r["path"], pictures) for r in records] == ["a/cell.png",
                                                                       "b/cell.png"]
    for record, size in zip(records, [(300, 120), (50, 80)]):
        assert set(record) == {"path", "predicted", "probability", "peak_x", "peak_y",
                               "overlay"}
        assert record["predicted"] in ("blue", "red") and 0.5 <= record["probability"] <= 1
        assert 0 <= record["peak_x"] < size[0] and 0 <= record["peak_y"] < size[1]
    assert [os.path.basename(r["overlay"]) for r in records] == ["cell.png", "cell-2.png"]
    with Image.open(records[0]["overlay"]) as first, Image.open(records[1]["overlay"]) as second:
        assert first.size == (200, 80) and second.size == (50, 80)
    assert "Explained 2 images with SqueezeNet 1.1 (layer features.fire9, cpu)" in captured.err
    assert "broken.png: not an image Pillow can read" in captured.err


def test_the_console_command(model_file, pictures, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "orangecontrib.deepimage.cli", "explain",
                           str(model_file), str(pictures / "a" / "cell.png"), "--json",
                           "--layer", "features.fire8"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (record,) = json.loads(proc.stdout)
    assert set(record) == {"path", "predicted", "probability", "peak_x", "peak_y"}
    assert "layer features.fire8" in proc.stderr


def test_wrong_input_says_what_to_do(model_file, pictures, tmp_path, capsys):
    def error(*args):
        assert main(["explain", *map(str, args)]) == 2
        return capsys.readouterr().err

    assert "give -o DIR for overlays, --json, or both" in error(model_file, pictures)
    assert "no such file: nothing.pkcls" in error("nothing.pkcls", pictures, "--json")
    assert "nor is it a network's name" in error("nothing", pictures, "--json")
    assert "has no layer 'fire99'" in error(model_file, pictures, "--json", "--layer", "fire99")
    assert "no such file or folder" in error(model_file, pictures / "gone", "--json")
    from Orange.classification import MajorityLearner
    from Orange.data import Table
    other = tmp_path / "majority.pkcls"
    other.write_bytes(pickle.dumps(MajorityLearner()(Table("iris"))))
    assert "is not one of Deep Image's networks" in error(other, pictures, "--json")
    text = tmp_path / "text.pkcls"
    text.write_text("hello")
    assert "is not a model file" in error(text, pictures, "--json")


def test_nothing_readable_exits_1(model_file, pictures, capsys):
    assert main(["explain", str(model_file), str(pictures / "b" / "broken.png"),
                 "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == []
