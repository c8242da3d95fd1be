"""Where networks run: the device and backend choices every caller offers.

The command line, the server settings and the widgets list the same choices
(:data:`DEVICES`, :data:`DEVICE_LABELS`, :data:`BACKENDS`); :func:`resolve_device`
and :func:`resolve_backend` turn "auto" into a concrete choice. Nothing here imports
torch unless a GPU may be present.
"""
from __future__ import annotations

import os
import sys

__all__ = ["DEVICES", "DEVICE_LABELS", "BACKENDS", "cuda_possible", "resolve_device",
           "resolve_backend"]

DEVICE_LABELS = (("auto", "Automatic"), ("cpu", "CPU"), ("cuda", "GPU"))  # for GUIs
DEVICES = tuple(device for device, _ in DEVICE_LABELS)  # the choices every caller offers
BACKENDS = ("auto", "torch", "onnx")


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


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when a CUDA GPU is usable, else 'cpu'; checks explicit choices."""
    device = (device or "auto").lower()
    if device == "gpu":
        device = "cuda"
    if device == "cpu":
        return device
    if device not in ("auto", "mps") and not device.startswith("cuda"):
        raise ValueError(f"Unknown device {device!r}: choose auto, cpu or cuda.")
    if device == "auto" and not cuda_possible():
        return "cpu"
    import torch
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
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
