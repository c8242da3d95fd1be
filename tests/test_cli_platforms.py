"""`deepimage embed` output across systems (issue 21, items 4 and 14): CSV on a Windows
console (cp1252, "\\r\\n" translation: simulated with a TextIOWrapper of that kind as
stdout), file names that are not UTF-8 (a real Latin-1 name, end to end), and an output
that cannot be written (a file held by another program, as on Windows), which must not
lose the vectors already computed."""
import csv
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from Orange.data import Table
from PIL import Image

from orangecontrib.deepimage.cli import main


def _photo(path, seed):
    pixels = np.random.default_rng(seed).integers(0, 255, (20, 30, 3), np.uint8)
    with open(path, "wb") as f:  # a bytes path: Pillow 10.0's save() takes no bytes name
        Image.fromarray(pixels).save(f, format="JPEG")


@pytest.fixture
def latin1_folder(tmp_path):
    """A folder with "caf\\xe9.jpg" (Latin-1 bytes, not UTF-8) and "ok.jpg"."""
    if sys.platform in ("win32", "darwin"):
        pytest.skip("Windows and macOS file names are always Unicode")
    folder = tmp_path / "photos"
    folder.mkdir()
    try:
        _photo(os.path.join(os.fsencode(folder), b"caf\xe9.jpg"), 0)
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    _photo(folder / "ok.jpg", 1)
    return folder


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "orangecontrib.deepimage.cli", *args],
                          capture_output=True, timeout=300)


@pytest.mark.parametrize("suffix", [".csv", ".tab"])
def test_a_latin1_file_name_is_written_escaped(latin1_folder, tmp_path, suffix):
    out = tmp_path / f"x{suffix}"
    proc = run_cli("embed", str(latin1_folder), "-o", str(out), "--no-cache")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    text = out.read_text(encoding="utf-8")  # valid UTF-8 throughout
    assert "caf\\xe9.jpg" in text and "ok.jpg" in text
    if suffix == ".tab":
        table = Table(str(out))
        assert sorted(table.get_column("image")) == ["caf\\xe9.jpg", "ok.jpg"]
        assert table.X.shape == (2, 512)
        assert not np.isnan(table.get_column("width").astype(float)).any()  # real file read
    assert os.listdir(tmp_path) == [out.name, latin1_folder.name]


def test_a_latin1_file_name_on_stdout(latin1_folder):
    proc = run_cli("embed", str(latin1_folder), "--no-cache", "-q")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    rows = list(csv.reader(io.StringIO(proc.stdout.decode("utf-8"), newline="")))
    assert sorted(os.path.basename(r[0]) for r in rows[1:]) == ["caf\\xe9.jpg", "ok.jpg"]


def test_csv_on_a_windows_console_is_utf8_with_one_row_end(tmp_path, monkeypatch):
    folder = tmp_path / "ćevapi"  # "ć" is not in cp1252
    folder.mkdir()
    _photo(folder / "slika.jpg", 2)
    console = io.BytesIO()
    windows_stdout = io.TextIOWrapper(console, encoding="cp1252", newline="\r\n")
    monkeypatch.setattr(sys, "stdout", windows_stdout)
    assert main(["embed", str(folder), "--no-cache", "-q"]) == 0
    windows_stdout.flush()
    data = console.getvalue()
    assert b"\r\r\n" not in data and data.count(b"\r\n") == 2
    assert data.decode("utf-8").splitlines()[1].startswith(str(folder / "slika.jpg"))


def test_an_output_held_by_another_program_keeps_the_vectors(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        _photo(folder / f"p{i}.jpg", i)
    out = tmp_path / "out"
    out.mkdir()

    def held(*args):
        raise PermissionError(32, "The process cannot access the file because it is being "
                                  "used by another process")

    monkeypatch.setattr(os, "replace", held)
    assert main(["embed", str(folder), "-o", str(out / "x.tab"), "--no-cache"]) == 1
    err = capsys.readouterr().err
    assert "could not write" in err and "being used by another process" in err
    rescued = [name for name in os.listdir(out)]
    assert len(rescued) == 1 and rescued[0].startswith("x-unsaved-"), rescued  # no .part
    assert f"the 2 vectors are in {out / rescued[0]}" in err
    with open(out / rescued[0], newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 3 and len(rows[1]) == 513


def test_a_trained_model_that_cannot_be_written_is_kept(tmp_path, monkeypatch, capsys):
    import pickle
    import tempfile

    from orangecontrib.deepimage.cli.train import _write_model
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    (tmp_path / "temp").mkdir()
    assert _write_model({"a model": 1}, str(tmp_path / "m.pkcls")) == 0
    assert pickle.loads((tmp_path / "m.pkcls").read_bytes()) == {"a model": 1}
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(PermissionError(13, "held")))
    assert _write_model({"a model": 2}, str(tmp_path / "m.pkcls")) == 1
    rescued = os.listdir(tmp_path / "temp")
    assert len(rescued) == 1 and f"the model is in {tmp_path / 'temp' / rescued[0]}" in \
        capsys.readouterr().err
    assert pickle.loads((tmp_path / "temp" / rescued[0]).read_bytes()) == {"a model": 2}
    assert sorted(os.listdir(tmp_path)) == ["m.pkcls", "temp"]  # no .part left
