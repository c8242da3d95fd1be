"""`deepimage label-next` and `deepimage label-issues` on files `deepimage embed` wrote."""
import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from orangecontrib.deepimage.cli import main
from orangecontrib.deepimage.cli.label import STRATEGIES


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """Ten digits each of 0, 1 and 7 in class folders, one 0 misfiled under 1,
    embedded by `deepimage embed` (real SqueezeNet) to .csv, .tab and .npy."""
    from sklearn.datasets import load_digits
    root = tmp_path_factory.mktemp("label-cli")
    digits = load_digits()
    for digit in (0, 1, 7):
        folder = root / "digits" / str(digit)
        folder.mkdir(parents=True)
        for index in np.flatnonzero(digits.target == digit)[:10]:
            grey = (255 - digits.images[index] * 16).clip(0, 255).astype(np.uint8)
            image = Image.fromarray(grey, "L").resize((64, 64), Image.Resampling.BICUBIC)
            image.save(folder / f"d{index:04}.png")
    misfiled = root / "digits" / "1" / "d0000.png"
    os.replace(root / "digits" / "0" / "d0000.png", misfiled)
    files = {}
    for suffix in ("csv", "tab", "npy"):
        files[suffix] = str(root / f"emb.{suffix}")
        assert main(["embed", str(root / "digits"), "-o", files[suffix]]) == 0
    files["misfiled"] = str(misfiled)
    return files


def test_label_next_without_labels_meets_every_digit(embedded, capsys):
    assert main(["label-next", embedded["csv"], "-n", "3"]) == 0
    out, err = capsys.readouterr()
    picks = out.splitlines()
    assert len(picks) == 3 and all(os.path.isfile(p) for p in picks)
    assert sorted(os.path.basename(os.path.dirname(p)) for p in picks) == ["0", "1", "7"]
    assert "0 labelled in 0 classes" in err


def test_label_next_with_a_label_file(embedded, tmp_path, capsys):
    with open(embedded["csv"]) as f:
        images = [row[0] for row in csv.reader(f)][1:]
    label_file = tmp_path / "labels.csv"
    with open(label_file, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label"])
        for path in images[:12]:
            writer.writerow([os.path.basename(path), os.path.basename(os.path.dirname(path))])
        writer.writerow(["deleted-since.png", "7"])
    assert main(["label-next", embedded["csv"], "--labels", str(label_file), "-n", "40",
                 "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["labelled"] == 12
    assert len(report["next"]) == len(images) - 12      # fewer than asked: all that remain
    assert not {item["image"] for item in report["next"]} & set(images[:12])
    assert [images[item["row"]] for item in report["next"]] == \
        [item["image"] for item in report["next"]]
    assert "1 labelled image of" in err and "deleted-since.png" in err


def test_label_issues_finds_the_misfiled_digit(embedded, capsys):
    assert main(["label-issues", embedded["tab"], "--labels", "category"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split("\t") == ["image", "label", "likely", "p(label)", "p(likely)"]
    image, label, likely = lines[1].split("\t")[:3]
    assert (image, label, likely) == ("1/d0000.png", "1", "0")
    assert "30 labelled in 3 classes" in err and "estimated accuracy" in err
    assert main(["label-issues", embedded["tab"], "--labels", "category", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["issues"][0]["image"] == "1/d0000.png" and 0 < report["accuracy"] <= 1


@pytest.mark.parametrize("args, message", [
    (["label-next", "missing.csv"], "no such file: missing.csv"),
    (["label-next", "{tab}", "--labels", "colour"], "neither a column of"),
    (["label-next", "{npy}", "-n", "-1"], "-n must be 0 or more"),
    (["label-issues", "{npy}", "--labels", "category"], "its columns: none"),
    (["label-next", "{misfiled}"], "not an embeddings file"),
])
def test_errors_are_one_line_and_exit_2(embedded, capsys, args, message):
    args = [a.format(**embedded) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "deepimage: error: " in err and message in err and "Traceback" not in err


def test_label_next_on_npy_and_the_strategies_match_the_core(embedded, capsys):
    from orangecontrib.deepimage.labelling import STRATEGIES as CORE
    assert STRATEGIES == CORE
    assert main(["label-next", embedded["npy"], "-n", "4", "--strategy", "random"]) == 0
    rows = capsys.readouterr().out.split()
    assert len(set(rows)) == 4 and all(0 <= int(r) < 30 for r in rows)
