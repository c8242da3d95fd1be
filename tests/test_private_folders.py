"""The tests keep out of the user's files: every cache and settings folder they can
write to (ours, torch's, Orange's, image-analytics', Qt's) is under the temporary
folder conftest.py makes (fixture test_home). tests/server/test_live.py clears
image-analytics' embedding cache, which would otherwise be the user's
~/.cache/Orange/<version>/canvas/squeezenet_embeddings.pickle.

Windows and macOS are simulated here (sys.platform, ntpath): the folders Orange's
own code would choose there must be private too."""
import os
import sys

import pytest


@pytest.fixture
def private(test_home):
    """private(path): whether path is inside the tests' temporary home."""
    home = os.path.realpath(test_home)
    return lambda path: os.path.commonpath([os.path.realpath(path), home]) == home


def test_our_cache_and_torch_hub_are_private(private):
    from orangecontrib.deepimage.core.cache import default_cache_dir
    from orangecontrib.deepimage.core.weights import hub_checkpoint_dir
    assert private(default_cache_dir()) and private(hub_checkpoint_dir())


def test_orange_folders_are_private(private):
    from Orange.canvas.config import cache_dir as canvas_cache_dir
    from Orange.misc import environ
    from orangewidget.settings import widget_settings_dir
    folders = {"Orange cache": environ.cache_dir(), "Orange data": environ.data_dir(),
               "canvas cache (image-analytics' pickles)": canvas_cache_dir(),
               "widget settings": widget_settings_dir()}
    print("\n".join(f"{name}: {path}" for name, path in folders.items()))
    assert all(private(path) for path in folders.values()), folders


def test_image_analytics_cache_files_are_private(private):
    pytest.importorskip("orangecontrib.imageanalytics")
    from AnyQt.QtCore import QStandardPaths
    from Orange.misc.utils.embedder_utils import EmbedderCache
    pickle = EmbedderCache("squeezenet")._cache_file_path
    qt_cache = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation)
    print(f"image-analytics' pickle: {pickle}\nQt's cache folder: {qt_cache}")
    assert private(pickle) and private(qt_cache)


@pytest.mark.parametrize("platform", ["win32", "darwin", "linux"])
def test_the_folders_orange_would_use_on_each_system_are_private(private, monkeypatch,
                                                                 platform):
    """Orange.misc.environ and our default_cache_dir, as they run on Windows and macOS."""
    from Orange.misc import environ
    from orangecontrib.deepimage.core.cache import default_cache_dir
    monkeypatch.setattr(sys, "platform", platform)
    folders = {"Orange cache": environ.cache_dir(), "Orange data": environ.data_dir(),
               "Orange data base": environ.data_dir_base(),
               "our cache": str(default_cache_dir())}
    print("\n".join(f"{name}: {path}" for name, path in folders.items()))
    assert all(private(path) for path in folders.values()), folders


def test_the_home_folder_is_private_on_each_system(private):
    """Where ~ leads with posixpath (HOME) and with ntpath (USERPROFILE, as on Windows)."""
    import ntpath
    import posixpath
    assert private(posixpath.expanduser("~")) and private(os.path.expanduser("~/x"))
    assert ntpath.expanduser("~").startswith(os.environ["USERPROFILE"])
    assert private(os.environ["USERPROFILE"]) and private(os.environ["APPDATA"])
    assert private(os.environ["LOCALAPPDATA"])


def test_qt_paths_and_settings_files_are_private(private):
    """QStandardPaths asks Windows and macOS themselves, not the environment: the tests
    run it in its test mode; QSettings writes INI files under the test home."""
    from AnyQt.QtCore import QSettings, QStandardPaths
    from orangewidget.settings import widget_settings_dir
    kinds = QStandardPaths.StandardLocation
    # test mode: ~/.qttest/..., under the redirected home on every system
    assert ".qttest" in QStandardPaths.writableLocation(kinds.GenericDataLocation)
    for kind in (kinds.GenericDataLocation, kinds.GenericCacheLocation,
                 kinds.AppDataLocation, kinds.GenericConfigLocation, kinds.CacheLocation):
        assert private(QStandardPaths.writableLocation(kind)), kind
    assert private(widget_settings_dir())
    settings = QSettings()  # as Orange's canvas makes them: the default format, INI here
    assert settings.format() == QSettings.Format.IniFormat and private(settings.fileName())
    if sys.platform != "win32":  # named ones are INI files too, except Windows' registry
        assert private(QSettings("biolab.si", "deepimage-test").fileName())
