"""The lessons' digits (tutorials/make_digits.py): written as class folders, and written
by the lessons only into their own folder, always 50 of each, never into a folder a
user mistyped."""
import os

import pytest

from orangecontrib.deepimage import tutorials
from orangecontrib.deepimage.tutorials import lesson1_clustering, lesson3_server
from orangecontrib.deepimage.tutorials.lesson_steps import import_images
from orangecontrib.deepimage.tutorials.make_digits import PER_CLASS, ensure_digits, \
    write_digits

DIGITS = [str(d) for d in range(10)]


def counts(folder) -> dict:
    return {d: len(os.listdir(os.path.join(folder, d))) for d in sorted(os.listdir(folder))}


def test_make_digits_writes_class_folders(tmp_path):
    written = write_digits(str(tmp_path), per_class=2)
    assert written == 20
    assert sorted(os.listdir(tmp_path)) == DIGITS
    from PIL import Image
    with Image.open(next((tmp_path / "7").iterdir())) as image:
        assert image.size == (64, 64) and image.mode == "L"


def test_lessons_folder_gets_all_the_digits_when_a_lesson_asks_for_fewer(
        tmp_path, monkeypatch, capsys):
    """`lesson1 --per-class 10` on a fresh checkout: the lesson uses 10 of each, but the
    folder gets all 50, which later lessons and the workflows expect."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    monkeypatch.setattr(tutorials, "DIGITS_DIR", str(tmp_path / "link" / "digits"))
    folder = str(real / "digits") + os.sep  # the same folder, spelled otherwise
    data = import_images(folder, per_class=2)
    assert len(data) == 20
    assert counts(real / "digits") == dict.fromkeys(DIGITS, PER_CLASS) and PER_CLASS == 50
    out = capsys.readouterr().out
    assert out.count("Writing the lessons' digits") == 1
    # there now: nothing is written again, and an existing folder is never topped up
    assert len(import_images(folder)) == 500
    assert "Writing" not in capsys.readouterr().out
    for digit in DIGITS:
        for name in os.listdir(real / "digits" / digit)[1:]:
            os.remove(real / "digits" / digit / name)
    assert ensure_digits(tutorials.DIGITS_DIR) == tutorials.DIGITS_DIR
    assert counts(real / "digits") == dict.fromkeys(DIGITS, 1)


def test_another_missing_folder_is_an_error_and_is_not_created(tmp_path, monkeypatch):
    monkeypatch.setattr(tutorials, "DIGITS_DIR", str(tmp_path / "digits"))
    mistyped = str(tmp_path / "my_imgaes")
    with pytest.raises(SystemExit, match="was not found: give a folder with one "
                                         "subfolder of images per class"):
        ensure_digits(mistyped)
    with pytest.raises(SystemExit, match="my_imgaes was not found"):
        lesson1_clustering.main(["--data", mistyped, "--per-class", "2"])
    with pytest.raises(SystemExit, match="my_imgaes was not found"):  # before any server
        lesson3_server.run(mistyped, per_class=2, server="http://127.0.0.1:9")
    assert sorted(os.listdir(tmp_path)) == []


def test_the_lessons_digits_are_committed_and_are_what_make_digits_writes(tmp_path):
    """The digits ship with the add-on (package data), so a lesson opened from Help >
    Example Workflows finds them with no command; they are make_digits' own output."""
    import numpy as np
    from PIL import Image
    folder = os.path.join(os.path.dirname(tutorials.__file__), "digits")
    assert counts(folder) == dict.fromkeys(DIGITS, PER_CLASS)
    write_digits(str(tmp_path), PER_CLASS)
    for digit in DIGITS:
        names = sorted(os.listdir(os.path.join(folder, digit)))
        assert names == sorted(os.listdir(tmp_path / digit))
        for name in names[:3] + names[-1:]:
            with Image.open(os.path.join(folder, digit, name)) as shipped, \
                    Image.open(tmp_path / digit / name) as written:
                assert np.array_equal(np.asarray(shipped), np.asarray(written)), name
    size = sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(folder) for f in files)
    assert size < 2_000_000

