"""The `deepimage` command line, as a user runs it."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from orangecontrib.deepimage.cli import main


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "orangecontrib.deepimage.cli", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def test_models_lists_every_network_and_its_weights(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "available" in lines["squeezenet"] and "512" in lines["squeezenet"]
    assert "missing" in lines["vgg16"] and "4096" in lines["vgg16"]
    assert "299x299" in lines["inception-v3"]
    assert "vgg19-dcbb9e9d.pth" in out  # says which file to put where


def test_embed_to_csv_reports_skipped_files(photo_dir, tmp_path):
    out = tmp_path / "emb.csv"
    proc = run_cli("embed", str(photo_dir), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    with open(out) as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["image", "n0", "n1"] and len(rows[0]) == 513
    assert [os.path.basename(r[0]) for r in rows[1:]] == [
        "cats0.jpg", "cats1.jpg", "cats2.jpg", "dogs0.jpg", "dogs1.jpg", "dogs2.jpg"]
    assert "Embedded 6 images" in proc.stderr and "skipped 3" in proc.stderr
    assert "empty.jpg: empty file" in proc.stderr and "images/s" in proc.stderr
    assert "CUDA" not in proc.stderr and "cuda" not in proc.stderr.replace("(onnx, cpu)", "")


def test_embed_to_orange_tab_keeps_the_image_table_layout(photo_dir, tmp_path, capsys):
    from Orange.data import Table
    out = tmp_path / "emb.tab"
    assert main(["embed", str(photo_dir), "-o", str(out), "--backend", "torch"]) == 0
    table = Table(str(out))
    assert len(table) == 6 and len(table.domain.attributes) == 512
    assert table.domain.class_var.name == "category"
    assert list(table.domain.class_var.values) == ["cats", "dogs"]
    image = table.domain["image"]
    assert image.attributes["type"] == "image"
    assert image.attributes["origin"] == str(photo_dir)
    assert table.get_column(image)[0] == "cats/cats0.jpg"


def test_embed_to_npy_and_cache_on_rerun(photo_dir, tmp_path, capsys):
    out = tmp_path / "emb.npy"
    assert main(["embed", str(photo_dir / "cats"), str(photo_dir / "dogs" / "dogs1.jpg"),
                 "-o", str(out)]) == 0
    first = np.load(out)
    assert first.shape == (4, 512)
    capsys.readouterr()
    assert main(["embed", str(photo_dir / "cats"), str(photo_dir / "dogs" / "dogs1.jpg"),
                 "-o", str(out)]) == 0
    assert "(4 from the cache)" in capsys.readouterr().err
    np.testing.assert_allclose(np.load(out), first, rtol=1e-6)


def test_csv_to_stdout_without_output(photo_dir, capsys):
    assert main(["embed", str(photo_dir / "cats" / "cats0.jpg"), "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].startswith("image,n0,n1")
    assert len(captured.out.splitlines()) == 2 and captured.err == ""


@pytest.mark.parametrize("args,code,message", [
    (["embed", "{dir}/cats/empty.jpg"], 1, "skipped 1"),
    (["embed", "{dir}/nowhere"], 2, "no such file or folder"),
    (["embed", "{dir}", "-o", "out.xlsx"], 2, "must end in"),
    (["embed", "{dir}", "--model", "resnet"], 2, "Unknown model"),
    (["embed", "{dir}", "--model", "vgg16"], 2, "vgg16-397923af.pth"),
])
def test_exit_codes_and_messages(photo_dir, capsys, args, code, message):
    args = [a.format(dir=photo_dir) for a in args]
    assert main(args) == code
    assert message in capsys.readouterr().err


def test_no_images_found_is_an_error(tmp_path, capsys):
    (tmp_path / "readme.txt").write_text("nothing here")
    assert main(["embed", str(tmp_path)]) == 2
    assert "no images found" in capsys.readouterr().err


def test_progress_bar_draws_on_a_terminal_only():
    import io
    from orangecontrib.deepimage.cli import ProgressBar
    stream = io.StringIO()
    bar = ProgressBar(stream, enabled=True)
    bar(5, 10)
    bar(10, 10)
    bar.close()
    bar.close()  # the CLI closes it on every way out; twice draws nothing more
    text = stream.getvalue()  # tqdm's bar, redrawn in place
    assert "\r100%|" in text and "| 10/10 [" in text and "image/s]" in text
    assert text.endswith("\n") and text.count("\n") == 1
    silent = io.StringIO()  # StringIO is not a terminal
    ProgressBar(silent)(1, 2)
    assert silent.getvalue() == ""


def test_embed_with_a_weights_file(photo_dir, tmp_path, capsys):
    """VGG and Inception weights cannot be downloaded here: a file of random ones stands in."""
    import torch
    from orangecontrib.deepimage.core.networks import build_backbone
    torch.manual_seed(0)
    weights = tmp_path / "inception.pth"
    torch.save(build_backbone("inception-v3").net.state_dict(), weights)
    out = tmp_path / "emb.npy"
    assert main(["embed", str(photo_dir / "cats"), "--model", "inception-v3", "--weights",
                 str(weights), "--backend", "torch", "--batch-size", "2", "-o", str(out)]) == 0
    assert np.load(out).shape == (3, 2048)
    assert "Inception v3 (torch, cpu)" in capsys.readouterr().err
