"""Test-wide settings: offscreen Qt, a private embedding cache, no downloads."""
import os
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["DEEPIMAGE_OFFLINE"] = "1"  # no test may download weights
# Keep the user's cache (and torch hub folder) out of the tests.
_home = tempfile.mkdtemp(prefix="deepimage-tests-")
os.environ["DEEPIMAGE_CACHE_DIR"] = os.path.join(_home, "cache")
os.environ["TORCH_HOME"] = os.path.join(_home, "torch")
os.environ.pop("DEEPIMAGE_WEIGHTS_DIR", None)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


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
