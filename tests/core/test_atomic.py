"""Interrupted or failed writes leave no ``.part`` file (nor half an image) behind
(issue 21, item 10): os.replace raising PermissionError as on Windows while another
program holds the target, a write failing (disk full), and Ctrl+C mid-write."""
import os

import pytest

from orangecontrib.deepimage.core import save
from orangecontrib.deepimage.core.atomic import atomic_path
from orangecontrib.deepimage.core.urls import UrlCache


def held_by_another_program(*args):
    raise PermissionError(32, "The process cannot access the file because it is being used "
                              "by another process")


def test_atomic_path_replaces_the_target_on_success(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.endswith(".part") and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "w") as f:
            f.write("new")
        assert target.read_text() == "old"  # readers see the old file until the end
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["x.json"]


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError])
def test_atomic_path_leaves_nothing_when_the_write_fails(tmp_path, failure):
    with pytest.raises(failure):
        with atomic_path(tmp_path / "x.npy", suffix=".npy") as tmp:
            assert tmp.endswith(".part.npy")
            with open(tmp, "w") as f:
                f.write("half")
            raise failure()
    assert os.listdir(tmp_path) == []


def test_atomic_path_leaves_nothing_when_the_target_is_held(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "replace", held_by_another_program)
    with pytest.raises(PermissionError):
        with atomic_path(tmp_path / "x.csv") as tmp, open(tmp, "w") as f:
            f.write("all of it")
    assert os.listdir(tmp_path) == []


def test_url_cache_leaves_no_part_file_when_the_file_is_held(tmp_path, monkeypatch):
    cache = UrlCache(tmp_path / "urls")
    monkeypatch.setattr(os, "replace", held_by_another_program)
    cache.put("https://example.org/a.jpg", b"jpeg bytes")  # skipped, as a read-only cache
    assert os.listdir(tmp_path / "urls") == []


@pytest.mark.parametrize("replace", [False, True])
def test_saving_an_image_interrupted_leaves_no_half_file(tmp_path, monkeypatch, replace):
    class FullDisk:
        def __init__(self, real):
            self.real = real

        def __enter__(self):
            self.real.__enter__()
            return self

        def __exit__(self, *exc):
            return self.real.__exit__(*exc)

        def write(self, data):
            self.real.write(data[:10])
            raise OSError(28, "No space left on device")

        def close(self):
            self.real.close()

    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: FullDisk(real_open(*a, **k)))
    with pytest.raises(OSError, match="No space"):
        save._write(str(tmp_path / "out" / "cat.png"), b"x" * 100, replace)
    assert os.listdir(tmp_path / "out") == []
