"""Image tables of images on several Windows drives (issue 21, item 4): `deepimage embed
C:\\a D:\\b -o x.tab` crashed in commonpath/relpath. Simulated with ntpath: data.py's
``os`` is replaced by one whose ``path`` is ntpath, as Python's os is on Windows."""
import ntpath
import os
import types

import pytest

from orangecontrib.deepimage import data
from orangecontrib.deepimage.core.urls import resolve
from orangecontrib.deepimage.data import image_column, image_paths, image_table

INFO = {"size": 10, "width": 4, "height": 3}


@pytest.fixture
def windows(monkeypatch):
    """data.py (and core.urls.resolve) as on Windows."""
    fake = types.SimpleNamespace(path=ntpath, sep="\\", getcwd=lambda: "C:\\work",
                                 fspath=os.fspath)
    monkeypatch.setattr(data, "os", fake)
    from orangecontrib.deepimage.core import urls
    monkeypatch.setattr(urls, "os", fake)


def test_paths_on_two_drives_have_no_common_root(windows):
    assert data.common_root([r"C:\a\x.jpg", r"D:\b\y.jpg"]) is None
    assert data.common_root([r"C:\a\x.jpg", r"C:\b\y.jpg"]) == "C:\\"
    assert data.relative_value(r"D:\b\y.jpg", r"C:\a") == "D:/b/y.jpg"
    assert data.relative_value(r"C:\a\s\y.jpg", r"C:\a") == "s/y.jpg"


def test_image_table_of_two_drives_keeps_absolute_paths(windows):
    paths = [r"C:\a\cats\x.jpg", r"D:\b\dogs\y.jpg", "https://ex.org/z.png"]
    table = image_table(paths, info=[INFO] * 3)
    column = image_column(table)
    assert column.attributes["origin"] == ""
    assert list(table.get_column(column)) == ["C:/a/cats/x.jpg", "D:/b/dogs/y.jpg",
                                              "https://ex.org/z.png"]
    assert list(table.domain.class_var.values) == ["", "C:/a/cats", "D:/b/dogs"]
    assert [ntpath.normpath(p) if "://" not in p else p for p in image_paths(table)] == paths


def test_an_explicit_root_on_another_drive_keeps_that_image_absolute(windows):
    table = image_table([r"C:\a\x.jpg", r"D:\b\y.jpg"], root=r"C:\a", info=[INFO] * 2)
    column = image_column(table)
    assert column.attributes["origin"] == "C:\\a"
    values = list(table.get_column(column))
    assert values == ["x.jpg", "D:/b/y.jpg"]
    assert [ntpath.normpath(resolve("C:\\a", v)) for v in values] == [r"C:\a\x.jpg",
                                                                      r"D:\b\y.jpg"]


def test_one_drive_is_unchanged_on_this_system(photo_dir):
    table = image_table(sorted(str(p) for p in photo_dir.rglob("cats*.jpg")))
    assert image_column(table).attributes["origin"] == str(photo_dir / "cats")
