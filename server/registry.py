"""The networks one server serves: registry models and fine-tuned ONNX files.

A registry model runs through ``core.local_embedder.Embedder`` (the same network, weights
and preprocessing as local embedding, so its ``weights_id`` matches the one a
local run uses); a fine-tuned network exported with `deepimage export --onnx`
runs through ``core.onnx.OnnxRunner`` and describes itself in its ONNX metadata
(``deepimage.base_model``, ``deepimage.image_size``, ``deepimage.classes``).
"""
from __future__ import annotations

import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from orangecontrib.deepimage.core.models import ModelSpec, UnknownModel, get_spec, models_help
from orangecontrib.deepimage.core.weights import WeightsUnavailable, file_digest, locate_weights

from .config import NAME_PATTERN, ConfigError, Settings

__all__ = ["ModelPlan", "ServedModel", "plan_models", "load_model", "registry_spec"]

log = logging.getLogger("orangecontrib.deepimage.server")


@dataclass(frozen=True)
class ModelPlan:
    """What to load under a name: a registry model (maybe with its own weights) or an ONNX file."""

    name: str
    registry_name: str  # the architecture (for ONNX files: the base model)
    weights_file: "Path | None" = None
    onnx_file: "Path | None" = None


@dataclass(frozen=True)
class ServedModel:
    """A loaded network and what /v1/models says about it."""

    name: str
    title: str
    dim: int
    input_size: int
    device: str
    backend: str
    weights_id: str
    fine_tuned: bool
    run: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)
    spec: ModelSpec = field(repr=False)  # the architecture (for ONNX files: the base model)
    classes: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()  # every device it runs on (--devices); () means (device,)

    def describe(self) -> dict:
        """What /v1/models says: the spec's description with what this server loaded."""
        return {**self.spec.describe(name=self.name, title=self.title, dim=self.dim,
                                     input_size=self.input_size, device=self.device,
                                     weights_id=self.weights_id, fine_tuned=self.fine_tuned),
                "devices": list(self.devices or (self.device,))}


def plan_models(settings: Settings) -> list[ModelPlan]:
    """Check the --models and --weights options; ConfigError naming what is wrong.

    Registry weights are located (never downloaded when DEEPIMAGE_OFFLINE is set), so a
    missing file is reported before the server starts, not when the first image comes.
    """
    files = settings.weights_files()
    plans: dict[str, ModelPlan] = {}
    for name in settings.models:
        spec = registry_spec(name)
        if spec is None:
            if name in files:
                continue  # a fine-tuned model named in --models too
            raise ConfigError(f"--models: unknown model {name!r}; choose from "
                              f"{models_help(None)}, or load a fine-tuned one with "
                              f"--weights NAME=FILE.onnx")
        plans[spec.name] = ModelPlan(spec.name, spec.name)
    for name, path in files.items():
        if not path.is_file():
            raise ConfigError(f"--weights {name}={path}: the file {path} does not exist.")
        if path.suffix.lower() == ".onnx":
            plans[name] = ModelPlan(name, _onnx_base_model(path), onnx_file=path)
        elif registry_spec(name) is not None:
            spec = registry_spec(name)
            plans[spec.name] = ModelPlan(spec.name, spec.name, weights_file=path)
        else:
            raise ConfigError(f"--weights {name}={path}: {name} is not a registry model "
                              f"({models_help(None)}), so FILE must be a fine-tuned network "
                              f"exported with `deepimage export MODEL --onnx FILE.onnx`.")
    if not plans:
        raise ConfigError("No models to serve: give --models squeezenet (or others).")
    for plan in plans.values():
        if not NAME_PATTERN.match(plan.name):
            raise ConfigError(f"{plan.name!r} cannot be a model name in a URL.")
        if plan.onnx_file is None and not settings.random_weights:
            try:
                locate_weights(plan.registry_name, plan.weights_file)
            except WeightsUnavailable as exc:
                raise ConfigError(str(exc)) from None
    return list(plans.values())


def registry_spec(name: str) -> "ModelSpec | None":
    """The spec of a registered (or torchvision) network called ``name``; None if none."""
    try:
        return get_spec(name)
    except UnknownModel:
        return None


def _onnx_base_model(path: Path) -> str:
    import onnx
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ConfigError(f"{path} is not a readable ONNX file ({type(exc).__name__}: "
                          f"{exc}).") from None
    meta = {prop.key: prop.value for prop in model.metadata_props}
    base = meta.get("deepimage.base_model")
    if not base:
        raise ConfigError(f"{path} has no deepimage.base_model metadata: export it with "
                          f"`deepimage export MODEL.pkcls --onnx {path.name}`.")
    try:
        return get_spec(base).name
    except KeyError:
        raise ConfigError(f"{path}: unknown base model {base!r} in its metadata.") from None


def load_model(plan: ModelPlan, settings: Settings, device: str) -> ServedModel:
    """Load (and warm up) one network. Runs in a worker thread: it may take a while."""
    if plan.onnx_file is not None:
        served = _load_onnx(plan, device)
    else:
        served = _load_registry(plan, settings, device)
    warm = np.zeros((min(settings.batch_limit(served.device), 8), served.input_size,
                     served.input_size, 3), np.uint8)
    out = served.run(warm[:1])
    if out.shape != (1, served.dim):
        raise RuntimeError(f"{plan.name}: the network returned {out.shape}, not (1, {served.dim})")
    served.run(warm)
    return served


def _load_registry(plan: ModelPlan, settings: Settings, device: str) -> ServedModel:
    from orangecontrib.deepimage.core.local_embedder import Embedder
    with _same_random_weights(settings.random_weights):
        embedder = Embedder(plan.registry_name, device=device, backend=settings.backend,
                            weights_file=plan.weights_file, cache=False,
                            random_weights=settings.random_weights,
                            batch_size=settings.batch_limit(device),
                            max_pixels=settings.max_pixels)
    spec = embedder.spec
    weights_id = embedder.weights_id or f"random-{uuid.uuid4().hex[:12]}"
    title = spec.display_name + (" (random weights, for testing)" if settings.random_weights
                                 else "")
    return ServedModel(plan.name, title, embedder.dim, spec.input_size, embedder.device,
                       embedder.backend, weights_id, False, embedder.embed_arrays, spec)


@contextlib.contextmanager
def _same_random_weights(random: bool):
    """With --random-weights, the same untrained network on every device (seeded), so that
    which device answers never changes a vector; the process's own RNG is left as it was."""
    if not random:
        yield
        return
    import torch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def _load_onnx(plan: ModelPlan, device: str) -> ServedModel:
    from orangecontrib.deepimage.core.onnx import OnnxRunner
    runner = OnnxRunner(plan.onnx_file, device)
    # the session has parsed the file: its metadata, without parsing it again
    meta = runner.session.get_modelmeta().custom_metadata_map
    spec = get_spec(plan.registry_name)
    try:
        size = int(meta.get("deepimage.image_size") or spec.input_size)
        classes = tuple(json.loads(meta.get("deepimage.classes") or "[]"))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{plan.onnx_file}: bad deepimage metadata ({exc}).") from None
    dim = int(runner(np.zeros((1, size, size, 3), np.uint8)).shape[1])
    providers = runner.session.get_providers()
    on_gpu = bool(providers) and providers[0] == "CUDAExecutionProvider"
    return ServedModel(plan.name, f"{plan.name} (fine-tuned {spec.display_name})", dim, size,
                       device if on_gpu else "cpu", "onnx",
                       f"onnx-{file_digest(plan.onnx_file)}", True, runner, spec,
                       tuple(str(c) for c in classes))
