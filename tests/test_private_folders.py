"""The tests keep out of the user's files: every cache and settings folder they can
write to (ours, torch's, Orange's, image-analytics', Qt's) is under the temporary
folder conftest.py makes (fixture test_home). tests/server/test_live.py clears
image-analytics' embedding cache, which would otherwise be the user's
~/.cache/Orange/<version>/canvas/squeezenet_embeddings.pickle."""
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


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG is for Linux")
def test_orange_folders_are_private(private):
    from Orange.canvas.config import cache_dir as canvas_cache_dir
    from Orange.misc import environ
    from orangewidget.settings import widget_settings_dir
    folders = {"Orange cache": environ.cache_dir(), "Orange data": environ.data_dir(),
               "canvas cache (image-analytics' pickles)": canvas_cache_dir(),
               "widget settings": widget_settings_dir()}
    print("\n".join(f"{name}: {path}" for name, path in folders.items()))
    assert all(private(path) for path in folders.values()), folders


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG is for Linux")
def test_image_analytics_cache_files_are_private(private):
    pytest.importorskip("orangecontrib.imageanalytics")
    from AnyQt.QtCore import QStandardPaths
    from Orange.misc.utils.embedder_utils import EmbedderCache
    pickle = EmbedderCache("squeezenet")._cache_file_path
    qt_cache = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation)
    print(f"image-analytics' pickle: {pickle}\nQt's cache folder: {qt_cache}")
    assert private(pickle) and private(qt_cache)
