"""`deepimage segment` and `deepimage segment-train`, end to end on real files."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from PIL import Image

from orangecontrib.deepimage.cli import main
from orangecontrib.deepimage.core.segment import read_label_image
from orangecontrib.deepimage.core.segment.synthetic import make_cells, sparse_labels


@pytest.fixture(scope="module")
def plates(tmp_path_factory):
    """Three 16-bit TIFFs of cells (uneven illumination), label images for two, a broken file."""
    root = tmp_path_factory.mktemp("segment-cli")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    counts = {}
    for i in range(3):
        cells = make_cells((128, 128), 10, seed=30 + i, gradient=1.0)
        tifffile.imwrite(root / "images" / f"plate{i}.tif", cells.image)
        counts[f"plate{i}"] = int(cells.labels.max())
        if i < 2:
            Image.fromarray(sparse_labels(cells.labels, 0.05, seed=i)).save(
                root / "labels" / f"plate{i}.png")
    (root / "broken.png").write_bytes(b"not an image")
    return root, counts


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_threshold_segmentation_writes_objects_masks_and_crops(plates, tmp_path, capsys):
    root, counts = plates
    out = tmp_path / "objects.csv"
    code = main(["segment", str(root / "images"), str(root / "broken.png"), "-o", str(out),
                 "--masks-out", str(tmp_path / "masks"), "--crops-out", str(tmp_path / "crops"),
                 "--diameter", "10,30", "--json"])
    assert code == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "broken.png" in captured.err
    assert [r["skipped"] is not None for r in report] == [False, False, False, True]
    rows = _rows(out)
    assert {r["image"] for r in rows} == {r["path"] for r in report[:3]}
    assert len(rows) == sum(r["count"] for r in report[:3])
    assert float(rows[0]["max intensity"]) > 255  # 16-bit counts
    for record in report[:3]:
        stem = os.path.splitext(os.path.basename(record["path"]))[0]
        assert abs(record["count"] - counts[stem]) <= 2
        assert read_label_image(record["mask"]).max() == record["count"]
    assert len(os.listdir(tmp_path / "crops")) == len(rows)


def test_train_then_segment_with_the_classifier(plates, tmp_path, capsys):
    root, counts = plates
    model = tmp_path / "cells.skops"
    assert main(["segment-train", str(root / "images"), "--labels", str(root / "labels"),
                 "-o", str(model), "--trees", "12"]) == 0
    err = capsys.readouterr().err
    assert "plate2.tif has no label image" in err and "trained on 2 images" in err
    out = tmp_path / "objects.csv"
    assert main(["segment", str(root / "images" / "plate2.tif"), "--classifier", str(model),
                 "-o", str(out), "-q"]) == 0
    assert abs(len(_rows(out)) - counts["plate2"]) <= 1


def test_bad_label_images_name_the_file(plates, tmp_path, capsys):
    root, _ = plates
    labels = tmp_path / "labels"
    labels.mkdir()
    Image.fromarray(np.ones((20, 20), np.uint8)).save(labels / "plate0.png")
    Image.fromarray(np.zeros((128, 128), np.uint8)).save(labels / "plate1.png")
    code = main(["segment-train", str(root / "images" / "plate0.tif"), "--labels", str(labels),
                 "-o", str(tmp_path / "m.skops")])
    assert code == 2 and "plate0.png" in capsys.readouterr().err
    code = main(["segment-train", str(root / "images" / "plate1.tif"), "--labels", str(labels),
                 "-o", str(tmp_path / "m.skops")])
    err = capsys.readouterr().err
    assert code == 2 and "plate1.png" in err and "no labels" in err


def test_wrong_arguments_are_clear_errors(plates, tmp_path, capsys):
    root, _ = plates
    image = str(root / "images" / "plate0.tif")
    assert main(["segment", image]) == 2
    assert "nothing to do" in capsys.readouterr().err
    assert main(["segment", image, "--json", "--diameter", "40"]) == 2
    assert "MIN,MAX" in capsys.readouterr().err
    assert main(["segment", image, "--json", "--method", "classifier"]) == 2
    assert "--classifier" in capsys.readouterr().err
    foreign = tmp_path / "foreign.skops"
    foreign.write_bytes(b"\x80\x04K\x01.")  # a pickle
    assert main(["segment", image, "--json", "--classifier", str(foreign)]) == 2
    assert "foreign.skops" in capsys.readouterr().err
    assert main(["segment", str(root / "broken.png"), "--json"]) == 1


def test_the_installed_command_runs(plates, tmp_path):
    root, _ = plates
    out = tmp_path / "objects.csv"
    done = subprocess.run([sys.executable, "-m", "orangecontrib.deepimage.cli", "segment",
                           str(root / "images" / "plate1.tif"), "-o", str(out), "-q"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(_rows(out)) > 0
