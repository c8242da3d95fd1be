"""Non-ASCII folders (C:\\Users\\Blaž\\..., common where Orange is taught) for every path
handed to a native library.

onnxruntime on Windows cannot open a model file whose path is outside the ANSI code
page; here (Linux) it can, so the test makes onnxruntime behave as on a Windows with
code page 1252: a str path it cannot encode is "not found". Models must reach it as
bytes. The other native readers are given open Python files or buffers (Pillow,
tifffile, torch.load, onnx.load) or take UTF-8 (sqlite3), and run here on real files
in a folder named outside any ANSI code page.
"""
import numpy as np
import onnxruntime
import pytest
import tifffile
from PIL import Image

from orangecontrib.deepimage.core import Embedder
from orangecontrib.deepimage.core.cache import EmbeddingCache
from orangecontrib.deepimage.core.images import find_images
from orangecontrib.deepimage.core.onnx import OnnxRunner

FOLDER = "Blaž Ωμέγα 日本"  # ž is in cp1250 and cp1252, the others in no ANSI code page


class AnsiOnlySession(onnxruntime.InferenceSession):
    """onnxruntime as on Windows with code page 1252: non-ANSI str paths fail."""

    def __init__(self, path_or_bytes, *args, **kwargs):
        if isinstance(path_or_bytes, str):
            try:
                path_or_bytes.encode("cp1252")
            except UnicodeEncodeError:
                raise onnxruntime.capi.onnxruntime_pybind11_state.NoSuchFile(
                    f"[ONNXRuntimeError] : 3 : NO_SUCHFILE : Load model from "
                    f"{path_or_bytes.encode('cp1252', 'replace').decode('cp1252')} "
                    f"failed. File doesn't exist") from None
        super().__init__(path_or_bytes, *args, **kwargs)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A user folder with a non-ANSI name: the cache, the images, everything in it."""
    folder = tmp_path / FOLDER
    folder.mkdir()
    monkeypatch.setenv("DEEPIMAGE_CACHE_DIR", str(folder / "cache"))
    monkeypatch.setattr(onnxruntime, "InferenceSession", AnsiOnlySession)
    rng = np.random.default_rng(1)
    images = folder / "slike čšž"
    images.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(
            images / f"fotografija {i} ü.png")
    tifffile.imwrite(images / "mikroskop µ.tif",
                     rng.integers(0, 65535, (30, 30), dtype=np.uint16))
    return folder


def test_the_simulation_refuses_non_ansi_paths(home, tmp_path):
    with pytest.raises(Exception, match="NO_SUCHFILE"):
        onnxruntime.InferenceSession(str(home / "model.onnx"))


def test_onnx_embedding_and_its_cache_in_a_non_ascii_folder(home):
    sources = find_images(str(home / "slike čšž"))
    assert len(sources) == 4
    with EmbeddingCache(home / "cache" / "embeddings.sqlite") as cache:
        first = Embedder("squeezenet", backend="onnx", cache=cache).embed(sources)
        assert len(first.indices) == 4 and not first.skipped
        exported = list((home / "cache" / "onnx").glob("*.onnx"))
        assert len(exported) == 1  # the export is kept in the non-ASCII cache folder
        # a new embedder loads that export (from the file, through bytes) and embeds
        again = Embedder("squeezenet", backend="onnx", cache=False).embed(sources)
        assert again.cached == 0
        np.testing.assert_allclose(again.embeddings, first.embeddings, atol=1e-4)
        assert Embedder("squeezenet", backend="onnx", cache=cache).embed(sources).cached == 4
    runner = OnnxRunner(exported[0])  # a path outside the code page, as the server gets one
    assert runner(np.zeros((1, 227, 227, 3), np.uint8)).shape == (1, 512)
