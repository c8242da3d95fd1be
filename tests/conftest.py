"""Test-wide settings: offscreen Qt, private caches and settings, no downloads.

Set before anything imports Orange or Qt, and inherited by every server or CLI
subprocess the tests start, so no test reads or writes the user's files: our
embedding cache, torch's hub folder, and Orange's own folders, on every system.
Orange.misc.environ (Orange's cache, where image-analytics keeps
<model>_embeddings.pickle, and its data folder) follows the XDG variables on Linux,
APPDATA on Windows and the home folder (~/Library) on macOS; os.path.expanduser
reads HOME, on Windows USERPROFILE. Qt's QStandardPaths (widget settings, which
image-analytics also uses) asks Windows and macOS themselves, so it is put in its
test mode (~/.qttest under the redirected home), and QSettings' files are redirected.
"""
import atexit
import gc
import os
import shutil
import tempfile
import unittest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["DEEPIMAGE_OFFLINE"] = "1"  # no test may download weights
TEST_HOME = tempfile.mkdtemp(prefix="deepimage-tests-")
atexit.register(shutil.rmtree, TEST_HOME, ignore_errors=True)
os.environ["DEEPIMAGE_CACHE_DIR"] = os.path.join(TEST_HOME, "cache")
os.environ["TORCH_HOME"] = os.path.join(TEST_HOME, "torch")
os.environ.pop("DEEPIMAGE_WEIGHTS_DIR", None)
for _variable, _folder in (("XDG_CACHE_HOME", "xdg-cache"), ("XDG_DATA_HOME", "xdg-data"),
                           ("XDG_CONFIG_HOME", "xdg-config"), ("HOME", "home"),
                           ("USERPROFILE", "home"), ("APPDATA", "home/AppData/Roaming"),
                           ("LOCALAPPDATA", "home/AppData/Local")):
    os.environ[_variable] = os.path.join(TEST_HOME, _folder)
    os.makedirs(os.environ[_variable], exist_ok=True)
for _variable in ("HOMEDRIVE", "HOMEPATH"):  # Windows' fallbacks for the home folder
    os.environ.pop(_variable, None)


def _private_qt_paths() -> None:
    """QStandardPaths in test mode and QSettings' files under the test home."""
    from AnyQt.QtCore import QSettings, QStandardPaths
    QStandardPaths.setTestModeEnabled(True)
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, os.path.join(TEST_HOME, "qsettings"))
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)  # not Windows' registry


_private_qt_paths()
try:  # no monitor thread waking every 10 s for the rest of the session (see below)
    import tqdm
    tqdm.tqdm.monitor_interval = 0
except ImportError:
    pass

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


def pytest_pycollect_makeitem(collector, name, obj):
    """Collect a module's own test classes only: a base class it imports (Orange's
    WidgetTest) is not a test of that module, and would be set up and torn down once
    more in each module that imports it, only to skip."""
    if isinstance(collector, pytest.Module) and isinstance(obj, type) \
            and issubclass(obj, unittest.TestCase) \
            and obj.__module__ != collector.obj.__name__:
        return []
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After a test that builds widgets (Orange's GuiTest, tests/widgets, and the
    lessons' workflows in tests/tutorials), collect its garbage here, in the GUI
    thread, then freeze what is left (gc.freeze: later collections skip it). Left for
    later, a cycle holding a Qt object could be collected by whichever thread
    allocates next (a widget's worker, a test server's event loop), and a Qt object
    must not be destroyed outside the GUI thread. Freezing also keeps the next
    collections short (the widget tests ran in 0.85 of the time, against 1.26 with a
    full collection alone)."""
    yield
    if _builds_widgets(item):
        gc.collect()
        gc.freeze()


def _builds_widgets(item) -> bool:
    cls = item.cls
    gui_test = cls is not None and any(c.__name__ == "GuiTest" for c in cls.__mro__)
    return gui_test or item.path.parent.name in ("widgets", "tutorials")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains a network; over ~20 s on a CPU "
                                       "(deselect with -m 'not slow')")


@pytest.fixture(scope="session")
def test_home() -> str:
    """The temporary folder that stands in for the user's caches and settings."""
    return TEST_HOME


@pytest.fixture
def photo_dir(tmp_path):
    """Six small distinct JPEGs in two class folders, plus three bad files."""
    rng = np.random.default_rng(0)
    for folder in ("cats", "dogs"):
        (tmp_path / folder).mkdir()
        for i in range(3):
            pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / folder / f"{folder}{i}.jpg")
    (tmp_path / "cats" / "empty.jpg").write_bytes(b"")
    (tmp_path / "dogs" / "notes.png").write_text("not an image")
    good = (tmp_path / "dogs" / "dogs0.jpg").read_bytes()
    (tmp_path / "dogs" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    return tmp_path
