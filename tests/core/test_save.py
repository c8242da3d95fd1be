"""core.save: formats, resizing by core's decoding, subfolders, never overwriting silently."""
import os

import numpy as np
import pytest
from PIL import Image

from orangecontrib.deepimage.core.save import (KEEP, RENAME, REPLACE, SaveItem, SaveOptions,
                                               file_stem, plan_targets, safe_subfolder,
                                               save_images)


@pytest.fixture
def sources(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(folder / "a.jpg")
    Image.new("RGBA", (40, 20), (255, 0, 0, 0)).save(folder / "b.png")
    rotated = Image.new("RGB", (30, 10), (0, 0, 255))
    exif = rotated.getexif()
    exif[0x0112] = 6  # shown turned by 90 degrees
    rotated.save(folder / "c.jpg", exif=exif)
    (folder / "broken.png").write_text("not an image")
    return folder


def items(folder, names, groups=None):
    groups = groups or [""] * len(names)
    return [SaveItem(i, str(folder / n) if n else "", g, file_stem(n, i) if n else "")
            for i, (n, g) in enumerate(zip(names, groups))]


def test_converts_resizes_with_core_decoding_and_skips_with_reasons(sources, tmp_path):
    out = tmp_path / "out"
    report = save_images(items(sources, ["a.jpg", "b.png", "c.jpg", "broken.png", "gone.jpg", ""],
                               ["cats", "dogs", "cats", "", "", ""]),
                         SaveOptions(str(out), "png", max_side=20))
    assert [os.path.relpath(t, out) for _, t in report.written] == [
        os.path.join("cats", "a.png"), os.path.join("dogs", "b.png"),
        os.path.join("cats", "c.png")]
    with Image.open(out / "cats" / "a.png") as a:
        assert (a.format, a.size) == ("PNG", (20, 15))  # aspect kept
    with Image.open(out / "dogs" / "b.png") as b:  # transparent -> white, as core decodes
        assert b.mode == "RGB" and b.getpixel((0, 0)) == (255, 255, 255)
    with Image.open(out / "cats" / "c.png") as c:
        assert c.size == (7, 20)  # EXIF rotation applied before fitting
    reasons = {s.index: s.reason for s in report.skipped}
    assert reasons == {3: "not an image Pillow can read", 4: "file not found", 5: "no file name"}
    assert report.total == 6 and not report.cancelled


def test_same_format_without_resizing_is_a_byte_copy(sources, tmp_path):
    out = tmp_path / "out"
    report = save_images(items(sources, ["a.jpg", "b.png"]), SaveOptions(str(out), "jpg"))
    assert (out / "a.jpg").read_bytes() == (sources / "a.jpg").read_bytes()
    with Image.open(out / "b.jpg") as b:
        assert b.format == "JPEG"
    assert len(report.written) == 2


def test_existing_files_are_kept_renamed_or_replaced_only_when_asked(sources, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"mine")
    todo = items(sources, ["a.jpg"])
    kept = save_images(todo, SaveOptions(str(out), "png"))
    assert (out / "a.png").read_bytes() == b"mine"
    assert kept.already_there == 1 and not kept.written
    assert "already there and was kept" in kept.skipped[0].reason

    renamed = save_images(todo, SaveOptions(str(out), "png", existing=RENAME))
    assert renamed.written == [(0, str(out / "a-2.png"))] and renamed.renamed == 1
    assert (out / "a.png").read_bytes() == b"mine"

    replaced = save_images(todo, SaveOptions(str(out), "png", existing=REPLACE))
    assert replaced.replaced == 1
    with Image.open(out / "a.png") as a:
        assert a.size == (80, 60)
    assert sorted(os.listdir(out)) == ["a-2.png", "a.png"]  # no temporary files left


def test_two_images_of_one_name_both_survive(sources, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    Image.new("RGB", (5, 5)).save(other / "a.jpg")
    todo = items(sources, ["a.jpg"]) + [SaveItem(1, str(other / "a.jpg"), "", "a")]
    report = save_images(todo, SaveOptions(str(tmp_path / "out"), "png", existing=KEEP))
    assert [os.path.basename(t) for _, t in report.written] == ["a.png", "a-2.png"]
    assert report.renamed == 1


def test_cancel_keeps_what_was_written(sources, tmp_path):
    calls = []
    report = save_images(items(sources, ["a.jpg", "b.png", "c.jpg"]),
                         SaveOptions(str(tmp_path / "out")), should_stop=lambda: len(calls) >= 1,
                         progress=lambda done, total: calls.append((done, total)))
    assert report.cancelled and len(report.written) == 1 and calls == [(1, 3)]
    assert os.listdir(tmp_path / "out") == ["a.png"]


def test_names_and_folders_are_safe():
    assert safe_subfolder("a/b") == "a/b"
    assert safe_subfolder("../../etc") == "etc"
    assert safe_subfolder('x:y?"') == "x_y__"
    assert safe_subfolder("/abs/path/") == "abs/path"
    assert file_stem("https://ex.org/img/cat%20one.jpg?x=1", 0) == "cat one"
    assert file_stem("data:image/png;base64,AAAA", 4) == "image-5"
    assert file_stem("/x/.hidden", 0) == ".hidden"
    assert file_stem("/x/noext", 0) == "noext"
    with pytest.raises(ValueError, match="Unknown format"):
        SaveOptions("x", "svg")


def test_plan_is_case_insensitive(tmp_path):
    todo = [SaveItem(0, "x", "", "Cat"), SaveItem(1, "y", "", "cat")]
    assert [os.path.basename(t) for t, _ in plan_targets(todo, SaveOptions(str(tmp_path)))] == \
        ["Cat.png", "cat-2.png"]
