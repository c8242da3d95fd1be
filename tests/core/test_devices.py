"""core.devices on the computers Orange users have, simulated on Linux by setting torch's
own attributes: Windows with PyPI's CPU-only torch and an NVIDIA driver, a CUDA build
with a GPU, Apple Silicon (MPS) and an Intel Mac."""
import sys

import pytest
import torch

from orangecontrib.deepimage.core import devices
from orangecontrib.deepimage.core.devices import (DEVICES, device_choices, resolve_device,
                                                  usable_or_auto)


@pytest.fixture
def computer(monkeypatch):
    """computer(cuda_build, gpu, platform, machine, mps): torch and the OS as given."""
    def make(cuda_build=None, gpu=False, platform="linux", machine="x86_64", mps=False):
        monkeypatch.setattr(torch.version, "cuda", cuda_build)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
        monkeypatch.setattr(sys, "platform", platform)
        monkeypatch.setattr(devices.platform, "machine", lambda: machine)
    return make


def usable(choice_list):
    return [c.device for c in choice_list if c.usable]


def test_every_caller_offers_mps():
    assert DEVICES == ("auto", "cpu", "cuda", "mps")


def test_windows_pypi_torch_with_a_driver_dll_has_no_cuda(computer):
    """PyPI's Windows torch is CPU-only; a driver (nvcuda.dll) says nothing about it."""
    computer(cuda_build=None, gpu=True, platform="win32")
    assert usable(device_choices()) == ["auto", "cpu"]
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match="No CUDA GPU"):
        resolve_device("cuda")
    cuda = next(c for c in device_choices() if c.device == "cuda")
    assert "PyPI" in cuda.why_not and cuda.label == "NVIDIA GPU (CUDA)"


def test_a_cuda_build_with_a_gpu(computer):
    computer(cuda_build="12.8", gpu=True)
    assert usable(device_choices()) == ["auto", "cpu", "cuda"]
    assert resolve_device("auto") == "cuda" and resolve_device("gpu") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"
    assert usable_or_auto("cuda") == ("cuda", "")


def test_a_cuda_build_without_a_gpu(computer):
    computer(cuda_build="12.8", gpu=False)
    assert usable(device_choices()) == ["auto", "cpu"]
    assert resolve_device("auto") == "cpu"


def test_apple_silicon_offers_its_gpu(computer):
    computer(platform="darwin", machine="arm64", mps=True)
    assert usable(device_choices()) == ["auto", "cpu", "mps"]
    assert resolve_device("mps") == "mps"
    assert resolve_device("auto") == "cpu"  # MPS only when chosen (see the module doc)
    assert usable_or_auto("mps") == ("mps", "")


@pytest.mark.parametrize("platform, machine", [("darwin", "x86_64"), ("linux", "aarch64"),
                                               ("win32", "AMD64")])
def test_mps_only_on_apple_silicon(computer, platform, machine):
    computer(platform=platform, machine=machine, mps=True)  # torch would even say yes
    assert "mps" not in usable(device_choices())
    with pytest.raises(ValueError, match="No Apple GPU"):
        resolve_device("mps")


def test_a_saved_gpu_falls_back_to_automatic_with_a_warning(computer):
    computer(cuda_build=None, gpu=False)
    for saved, label in (("cuda", "NVIDIA GPU (CUDA)"), ("mps", "Apple GPU (MPS)")):
        device, warning = usable_or_auto(saved)
        assert device == "auto" and warning == f"{label} is not on this computer: using Automatic."
    assert usable_or_auto("cpu") == ("cpu", "") and usable_or_auto("auto") == ("auto", "")


def test_unknown_devices_are_refused():
    with pytest.raises(ValueError, match="choose auto, cpu, cuda or mps"):
        resolve_device("tpu")


def test_server_and_cli_offer_mps(computer):
    from orangecontrib.deepimage.server.config import ConfigError, Settings
    assert Settings(devices=["mps"]).devices == ["mps"]
    computer(platform="linux")
    with pytest.raises(ConfigError, match="No Apple GPU"):
        Settings(device="mps").worker_devices()
    computer(platform="darwin", machine="arm64", mps=True)
    settings = Settings(device="mps")
    assert settings.worker_devices() == ["mps"] and settings.batch_limit("mps") == 64
