"""Listing folders (core.folders): other systems' hidden files are ignored, and a named
pipe (FIFO) named like an image is never opened, in every path that lists folders."""
import os
import sys
import threading
from unittest.mock import Mock

import numpy as np
import pytest
from PIL import Image

from orangecontrib.deepimage.core.folders import is_hidden, list_folder
from orangecontrib.deepimage.core.images import (ImageError, describe, find_images,
                                                 header_size, read_bytes)
from orangecontrib.deepimage.imports import run_import, scan_folder

SYSTEM_FILES = ["Thumbs.db", "desktop.ini", "DESKTOP.INI", "Icon\r", "._photo.jpg",
                ".DS_Store", "ehthumbs.db"]
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")


def _photo(path):
    pixels = np.random.default_rng(len(str(path))).integers(0, 255, (20, 30, 3), np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def camera_folder(tmp_path):
    """A folder as it comes from a Windows PC or a Mac: two photos and their clutter."""
    (tmp_path / "a").mkdir()
    _photo(tmp_path / "a" / "photo.jpg")
    _photo(tmp_path / "b.png")
    for name in SYSTEM_FILES:
        (tmp_path / "a" / name).write_bytes(b"\x00\x05\x16\x07 not an image")
    (tmp_path / "$RECYCLE.BIN").mkdir()
    _photo(tmp_path / "$RECYCLE.BIN" / "deleted.jpg")
    return tmp_path


def within(seconds, work, fifo=None):
    """work() in a thread (its result, or its exception raised here); fails (after
    unblocking ``fifo``'s reader) if it hangs."""
    result = {}

    def run():
        try:
            result["value"] = work()
        except Exception as exc:
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if fifo is not None:  # a writer end releases a reader blocked in open()
            os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))
        pytest.fail(f"hung for over {seconds} s")
    if "error" in result:
        raise result["error"]
    return result.get("value")


@pytest.mark.parametrize("name", SYSTEM_FILES + ["__MACOSX", "System Volume Information"])
def test_system_names_are_hidden(name):
    assert is_hidden(name)


@pytest.mark.parametrize("name", ["photo.jpg", "Icon.png", "thumbs.db.jpg", "desktop.png"])
def test_ordinary_names_are_not_hidden(name):
    assert not is_hidden(name)


def test_find_images_ignores_other_systems_files(camera_folder):
    found = find_images(camera_folder)
    assert [os.path.relpath(p, camera_folder) for p in found] == [os.path.join("a", "photo.jpg"),
                                                                  "b.png"]


def test_import_images_does_not_list_system_files_as_skipped(camera_folder):
    scan = scan_folder(str(camera_folder))
    assert [os.path.basename(p) for p in scan.images] == ["photo.jpg", "b.png"]
    assert scan.others == ()
    result = run_import(str(camera_folder), Mock(is_interruption_requested=lambda: False))
    assert result.n_images == 2 and result.n_skipped == 0 and result.skipped is None


@needs_fifo
def test_named_pipes_are_not_listed_nor_opened(camera_folder):
    fifo = camera_folder / "a" / "pipe.jpg"
    os.mkfifo(fifo)
    assert str(fifo) not in list_folder(camera_folder / "a").files
    assert len(within(10, lambda: find_images(camera_folder), fifo)) == 2
    assert within(10, lambda: scan_folder(str(camera_folder)), fifo).others == ()


@needs_fifo
def test_a_named_pipe_given_by_name_is_a_reason_not_a_hang(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert find_images([fifo]) == [str(fifo)]  # named explicitly: kept, and reported
    for read in (read_bytes, header_size):
        with pytest.raises(ImageError, match="not a regular file"):
            within(10, lambda: read(str(fifo)), fifo)
    assert within(10, lambda: describe(str(fifo)), fifo)["width"] is None


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no named pipes in folders")
@needs_fifo
def test_cli_embed_of_a_folder_with_a_fifo_finishes(camera_folder, tmp_path):
    import subprocess
    os.mkfifo(camera_folder / "a" / "pipe.jpg")
    out = tmp_path / "out.csv"
    proc = subprocess.run([sys.executable, "-m", "orangecontrib.deepimage.cli", "embed",
                           str(camera_folder), "-o", str(out), "--no-cache"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "Embedded 2 images" in proc.stderr and "skipped 0" in proc.stderr
