"""Where networks run: the device and backend choices every caller offers.

The command line, the server settings and the widgets list the same choices
(:data:`DEVICES`, :data:`DEVICE_LABELS`, :data:`BACKENDS`); :func:`device_choices`
says which of them work on this computer, :func:`resolve_device` and
:func:`resolve_backend` turn "auto" into a concrete choice, and :func:`usable_or_auto`
turns a choice saved on another computer into one that works here. Nothing here
imports torch unless a GPU may be present.

CUDA needs a torch built with CUDA (``torch.version.cuda``; PyPI's Windows and macOS
wheels have none, though an NVIDIA driver may be installed) and a visible GPU.
"mps" is the GPU of Apple Silicon Macs; "auto" chooses CUDA or the CPU, never MPS
(its networks are not tested on MPS: choose it explicitly).
"""
from __future__ import annotations

import os
import platform
import sys
from typing import NamedTuple

__all__ = ["DEVICES", "DEVICE_LABELS", "BACKENDS", "DeviceChoice", "cuda_possible",
           "cuda_usable", "mps_usable", "device_usable", "device_choices", "usable_or_auto",
           "resolve_device", "resolve_backend"]

DEVICE_LABELS = (("auto", "Automatic"), ("cpu", "CPU"), ("cuda", "NVIDIA GPU (CUDA)"),
                 ("mps", "Apple GPU (MPS)"))  # for GUIs
DEVICES = tuple(device for device, _ in DEVICE_LABELS)  # the choices every caller offers
BACKENDS = ("auto", "torch", "onnx")


class DeviceChoice(NamedTuple):
    """One entry of a device chooser: the value, its label, whether it works here, why not."""

    device: str
    label: str
    usable: bool
    why_not: str


def cuda_possible() -> bool:
    """False when no NVIDIA driver is installed, so that the CPU path never imports torch."""
    if "torch" in sys.modules:
        return True
    if sys.platform.startswith("linux"):
        return os.path.exists("/proc/driver/nvidia/version")
    if sys.platform == "win32":
        import ctypes.util
        return ctypes.util.find_library("nvcuda") is not None
    return False  # macOS has no CUDA


def cuda_usable() -> bool:
    """A CUDA GPU that this torch can use: torch built with CUDA and a device visible."""
    if not cuda_possible():
        return False
    import torch
    return bool(torch.version.cuda) and torch.cuda.is_available()


def mps_usable() -> bool:
    """The GPU of an Apple Silicon Mac, through torch's Metal backend (MPS)."""
    if sys.platform != "darwin" or platform.machine() != "arm64":
        return False
    import torch
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def device_usable(device: str) -> bool:
    """Whether ``device`` (a choice of :data:`DEVICES`, or cuda:N) works here."""
    device = (device or "auto").lower()
    if device in ("auto", "cpu"):
        return True
    if device == "gpu" or device.startswith("cuda"):
        return cuda_usable()
    return device == "mps" and mps_usable()


WHY_NOT = {"cuda": "No NVIDIA GPU that PyTorch can use on this computer (PyTorch's "
                   "Windows and macOS packages from PyPI have no CUDA).",
           "mps": "Only on Macs with Apple Silicon (M1 or newer)."}


def device_choices() -> "list[DeviceChoice]":
    """Every choice of :data:`DEVICE_LABELS`, with whether it works on this computer."""
    choices = []
    for device, label in DEVICE_LABELS:
        usable = device_usable(device)
        choices.append(DeviceChoice(device, label, usable, "" if usable else WHY_NOT[device]))
    return choices


def usable_or_auto(device: str) -> "tuple[str, str]":
    """(the device to use, a warning): a choice that does not work here (a workflow
    saved where there was a GPU) becomes "auto", with a warning that says so."""
    if device_usable(device):
        return device, ""
    label = dict(DEVICE_LABELS).get(device, device)
    return "auto", f"{label} is not on this computer: using Automatic."


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when a CUDA GPU is usable, else 'cpu'; checks explicit choices."""
    device = (device or "auto").lower()
    if device == "gpu":
        device = "cuda"
    if device == "cpu":
        return device
    if device not in ("auto", "mps") and not device.startswith("cuda"):
        raise ValueError(f"Unknown device {device!r}: choose auto, cpu, cuda or mps.")
    if device == "auto":
        return "cuda" if cuda_usable() else "cpu"
    if device == "mps" and not mps_usable():
        raise ValueError("No Apple GPU (MPS) on this computer: choose device 'cpu' or 'auto'.")
    if device.startswith("cuda") and not cuda_usable():
        raise ValueError("No CUDA GPU is usable on this computer: choose device 'cpu' or 'auto'.")
    return device


def resolve_backend(backend: str, device: str) -> str:
    """'auto' -> onnxruntime on the CPU (about 3x faster there), torch with AMP on a GPU."""
    backend = (backend or "auto").lower()
    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}: choose auto, torch or onnx.")
    if backend != "auto":
        return backend
    if device != "cpu":
        return "torch"
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnx"
