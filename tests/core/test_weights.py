"""Where weights come from, and the errors when they can't be had."""
import pickle
import types

import numpy as np
import pytest
import torch
from fresh_python import run_python

from orangecontrib.deepimage.core import weights as weights_module
from orangecontrib.deepimage.core.networks import build_backbone
from orangecontrib.deepimage.core.weights import (
    WeightsUnavailable, hub_checkpoint_dir, load_ndf_arrays, load_pretrained, locate_weights,
    weights_available)


def test_squeezenet_weights_come_from_ndf():
    location = locate_weights("squeezenet")
    assert location.path.name == "squeezenet_weights.pkl" and "ndf" in location.path.parts
    assert location.identity.startswith("ndf-")
    arrays = load_ndf_arrays(location.path)
    assert arrays["conv1"][0].shape == (3, 3, 3, 64)
    assert weights_available("squeezenet")[0]


def test_missing_weights_name_the_file_and_where_to_put_it():
    ok, why = weights_available("vgg16")
    assert not ok
    assert "vgg16-397923af.pth" in why and str(hub_checkpoint_dir()) in why
    with pytest.raises(WeightsUnavailable, match="DEEPIMAGE_OFFLINE"):
        locate_weights("inception-v3")  # the tests run with DEEPIMAGE_OFFLINE=1


def test_failed_download_explains_what_to_do(monkeypatch):
    """No internet here: the download itself is the one thing mocked."""
    monkeypatch.delenv("DEEPIMAGE_OFFLINE")
    calls = []

    def no_network(url, dst, **kwargs):
        calls.append(url)
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(WeightsUnavailable) as error:
        locate_weights("vgg19")
    assert calls == ["https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"]
    message = str(error.value)
    assert "could not be downloaded" in message and "vgg19-dcbb9e9d.pth" in message
    assert "choose SqueezeNet" in message


@pytest.fixture(scope="module")
def inception_state():
    torch.manual_seed(0)
    return build_backbone("inception-v3").net.state_dict()


def test_weights_from_the_hub_cache_and_weights_dir(tmp_path, monkeypatch, inception_state):
    hub = hub_checkpoint_dir()
    hub.mkdir(parents=True, exist_ok=True)
    torch.save(inception_state, hub / "inception_v3_google-0cc3c7bd.pth")
    try:
        location = locate_weights("inception-v3")
        assert location.path == hub / "inception_v3_google-0cc3c7bd.pth"
        backbone = build_backbone("inception-v3")
        load_pretrained(backbone, "inception-v3", location)
        torch.testing.assert_close(backbone.net.fc.weight, inception_state["fc.weight"])
    finally:
        (hub / "inception_v3_google-0cc3c7bd.pth").unlink()
    # DEEPIMAGE_WEIGHTS_DIR is looked at first
    monkeypatch.setenv("DEEPIMAGE_WEIGHTS_DIR", str(tmp_path))
    torch.save(inception_state, tmp_path / "inception_v3_google-0cc3c7bd.pth")
    assert locate_weights("inception-v3").path == tmp_path / "inception_v3_google-0cc3c7bd.pth"


def test_a_given_weights_file(tmp_path, inception_state):
    path = tmp_path / "mine.pth"
    torch.save({"state_dict": inception_state}, path)  # a checkpoint wrapping the state
    location = locate_weights("inception-v3", path)
    assert location.identity.startswith("file-")
    backbone = build_backbone("inception-v3")
    load_pretrained(backbone, "inception-v3", location)
    torch.testing.assert_close(backbone.net.Conv2d_1a_3x3.conv.weight,
                               inception_state["Conv2d_1a_3x3.conv.weight"])
    with pytest.raises(WeightsUnavailable, match="does not exist"):
        locate_weights("inception-v3", tmp_path / "nowhere.pth")


def test_wrong_weights_file_is_a_clear_error(tmp_path):
    path = tmp_path / "squeeze.pth"
    torch.save(build_backbone("squeezenet").state_dict(), path)
    with pytest.raises(WeightsUnavailable, match="does not hold Inception v3 weights"):
        load_pretrained(build_backbone("inception-v3"), "inception-v3",
                        locate_weights("inception-v3", path))


class Boom:
    def __reduce__(self):
        return (print, ("pwned",))


def test_weights_files_never_run_code(tmp_path):
    """torch.load(weights_only=True) and the ndf loader refuse pickled code."""
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"conv1": Boom()}, f)
    with pytest.raises(WeightsUnavailable, match="not a readable PyTorch weights file"):
        load_pretrained(build_backbone("vgg16"), "vgg16", locate_weights("vgg16", evil))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        weights_module.load_ndf_arrays(evil)


MULTIARRAY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")


@pytest.mark.parametrize("module", MULTIARRAY_MODULES)
def test_numpy_pickles_of_either_major_load(tmp_path, module):
    """numpy 1 pickles name numpy.core.multiarray, numpy 2 pickles numpy._core.multiarray:
    both load on every numpy setup.py accepts (1.24 to 2.x; CI runs 1.24 and 2.x)."""
    arrays = {"conv1": [np.arange(6, dtype=np.float32).reshape(2, 3),
                        np.array([0.5, -1.0], dtype=np.float64)]}
    data = pickle.dumps(arrays, protocol=3)  # ndf's protocol: globals as plain text
    for name in MULTIARRAY_MODULES:
        data = data.replace(f"c{name}\n".encode(), f"c{module}\n".encode())
    assert f"c{module}\n_reconstruct\n".encode() in data
    path = tmp_path / "weights.pkl"
    path.write_bytes(data)
    loaded = load_ndf_arrays(path)
    np.testing.assert_array_equal(loaded["conv1"][0], arrays["conv1"][0])
    assert loaded["conv1"][1].dtype == np.float64


def test_squeezenet_weights_load_when_numpy_core_is_a_stub(monkeypatch):
    """numpy 1.26 ships numpy._core as a stub package; once torch or onnx imports it,
    np._core exists but has no multiarray attribute. The ndf weights must still load."""
    monkeypatch.setattr(np, "_core", types.ModuleType("numpy._core"), raising=False)
    arrays = load_ndf_arrays(locate_weights("squeezenet").path)
    assert arrays["conv1"][0].shape == (3, 3, 3, 64)
    assert np.isfinite(arrays["conv1"][0]).all()


def test_squeezenet_weights_load_after_torch_and_onnx_in_a_fresh_process():
    """What the Image Embedder does in a fresh Orange: torch and onnx first, then ndf's
    weights (on numpy 1.26 this is where numpy._core turns into a stub)."""
    script = ("import torch, onnx, numpy\n"
              "from orangecontrib.deepimage.core.weights import load_ndf_arrays, locate_weights\n"
              "arrays = load_ndf_arrays(locate_weights('squeezenet').path)\n"
              "print(numpy.__version__, arrays['fire9/expand3x3'][0].shape)\n")
    done = run_python(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == np.__version__
