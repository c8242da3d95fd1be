"""ONNX export and onnxruntime inference (imported only when the onnx backend is used).

The exported graph includes the spec's preprocessing: it takes the same uint8
N x H x W x 3 RGB batch as the torch network, so both backends are fed alike.

torch.onnx.export keeps its state in module globals (``GLOBALS.in_onnx_export``), so
two exports at once in one process fail: the second raises "GLOBALS.in_onnx_export
must be False". That happened when Test & Score trained the last-layer classifier in
two threads (a cancelled evaluation's thread still running beside the new one), each
exporting SqueezeNet at the same size for the embeddings. Exports here take turns
(``_EXPORT_LOCK``), and a cached export is looked for again once it is our turn.
"""
from __future__ import annotations

import copy
import hashlib
import os
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from .cache import default_cache_dir
from .models import ModelSpec

__all__ = ["export_onnx", "export_classifier_onnx", "OnnxRunner", "onnx_providers"]

INPUT_NAME = "images"
OUTPUT_NAME = "embedding"

# One export at a time in this process (see the module's docstring). Re-entrant, so
# that OnnxRunner.for_network can hold it from its cache check through its export.
_EXPORT_LOCK = threading.RLock()


def export_onnx(net, spec: ModelSpec, path: "str | os.PathLike",
                image_size: "int | None" = None) -> Path:
    """Write ``net`` (an EmbeddingNet) as ONNX with a dynamic batch axis; atomic."""
    import torch
    size = image_size or spec.input_size
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a copy: the caller's network stays where it is (a GPU, say) and as it is
    net = copy.deepcopy(net).eval().to("cpu", memory_format=torch.contiguous_format)
    example = torch.zeros((2, size, size, 3), dtype=torch.uint8)
    fd, tmp = tempfile.mkstemp(suffix=".onnx.part", dir=path.parent)
    os.close(fd)
    try:
        with _EXPORT_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(net, (example,), tmp, dynamo=False, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=17,
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


PROBABILITIES_NAME = "probabilities"


def export_classifier_onnx(net, path: "str | os.PathLike", *, image_size: int,
                           classes: "list[str] | tuple[str, ...]",
                           base_model: "str | None" = None, tta: int = 1) -> Path:
    """Write a trained classifier (an EmbeddingNet with its last layer) as one ONNX file.

    Input ``images``: uint8 N x H x W x 3 RGB at ``image_size`` (dynamic batch). Outputs
    ``embedding`` (N x D, the penultimate layer) and ``probabilities`` (N x classes).
    Metadata: ``deepimage.base_model``, ``deepimage.image_size``, ``deepimage.classes``
    (a JSON list), ``deepimage.tta`` (views averaged), so a server can serve the file
    without anything else. Atomic. With ``tta`` 5 the probabilities are the mean of the
    five views the model predicts with (core.train.augment.tta_views: as it is and
    shifted each way), baked into the graph; the embedding is the image's as it is.
    """
    import json

    import onnx
    import torch

    class _Classifier(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, images):
            from .train.augment import tta_views
            backbone = self.inner.backbone
            embedding = backbone.forward_head(
                backbone.forward_features(self.inner.preprocess(images)), pre_logits=True)
            probabilities = torch.softmax(backbone.head_from_embedding(embedding), dim=1)
            for view in tta_views(images, tta, image_size)[1:]:
                probabilities = probabilities + torch.softmax(self.inner.logits(view), dim=1)
            return embedding, probabilities / max(int(tta), 1)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = _Classifier(copy.deepcopy(net).eval().to("cpu",
                                                     memory_format=torch.contiguous_format))
    example = torch.zeros((2, image_size, image_size, 3), dtype=torch.uint8)
    fd, tmp = tempfile.mkstemp(suffix=".onnx.part", dir=path.parent)
    os.close(fd)
    try:
        with _EXPORT_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), tmp, dynamo=False, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME, PROBABILITIES_NAME], opset_version=17,
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"},
                                            PROBABILITIES_NAME: {0: "batch"}})
        proto = onnx.load(tmp)
        for key, value in (("deepimage.base_model", base_model or net.spec.name),
                           ("deepimage.image_size", str(int(image_size))),
                           ("deepimage.classes", json.dumps(list(classes))),
                           ("deepimage.tta", str(int(tta)))):
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, tmp)
        # mkstemp makes the file private (0600); a model the user exports gets the
        # permissions any file they write gets
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def onnx_providers(device: str) -> list:
    """CUDA first when the device is a GPU and onnxruntime has it; always CPU last.

    The CUDA provider is never asked for on a CPU device, so a CPU-only
    machine with onnxruntime-gpu installed prints no CUDA errors.
    """
    import onnxruntime
    available = onnxruntime.get_available_providers()
    providers = []
    if device.startswith("cuda") and "CUDAExecutionProvider" in available:
        _, _, number = device.partition(":")  # cuda:1 -> that GPU; cuda -> the current one
        providers.append(("CUDAExecutionProvider", {"device_id": int(number)}) if number
                         else "CUDAExecutionProvider")
    providers.append("CPUExecutionProvider")
    return providers


class OnnxRunner:
    """Runs an exported network with onnxruntime; called like the torch runner."""

    def __init__(self, model: "str | os.PathLike | bytes", device: str = "cpu"):
        """``model``: the path of an .onnx file, or its bytes.

        A file is read here and handed over as bytes: onnxruntime on Windows cannot open
        a path outside the ANSI code page (C:\\Users\\Blaž\\...). Our exports keep their
        weights inside the file (no external data), so the bytes are the whole model.
        """
        import onnxruntime
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        # idle threads sleep instead of spinning, leaving the cores to the decoders
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = model if isinstance(model, bytes) else Path(model).read_bytes()
        self.session = onnxruntime.InferenceSession(source, options,
                                                    providers=onnx_providers(device))

    @staticmethod
    def cache_path(spec: ModelSpec, cache_name: str) -> Path:
        """Where the export of a network with a stable name is kept."""
        digest = hashlib.blake2b(cache_name.encode(), digest_size=8).hexdigest()
        return default_cache_dir() / "onnx" / f"{spec.name}-{digest}.onnx"

    @classmethod
    def from_cache(cls, spec: ModelSpec, cache_name: str, device: str) -> "OnnxRunner | None":
        """A runner for an earlier export, or None if there is none (or it is damaged)."""
        path = cls.cache_path(spec, cache_name)
        if not path.is_file():
            return None
        try:
            return cls(path, device)
        except Exception:  # damaged, or written by an incompatible version
            return None

    @classmethod
    def for_network(cls, net, spec: ModelSpec, device: str,
                    cache_name: "str | None" = None,
                    image_size: "int | None" = None) -> "OnnxRunner":
        """Export ``net``; kept in the cache folder when it has a stable name (and then
        not exported again if another thread has just written that file)."""
        if cache_name is None:  # e.g. random weights: nothing worth keeping
            with tempfile.TemporaryDirectory(prefix="deepimage-onnx-") as folder:
                path = export_onnx(net, spec, Path(folder) / "model.onnx", image_size)
                return cls(path.read_bytes(), device)
        with _EXPORT_LOCK:
            runner = cls.from_cache(spec, cache_name, device)
            if runner is not None:
                return runner
            path = export_onnx(net, spec, cls.cache_path(spec, cache_name), image_size)
        return cls(path, device)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(images)})[0]
        return np.asarray(out, dtype=np.float32)
