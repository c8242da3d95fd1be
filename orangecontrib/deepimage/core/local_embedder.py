"""Local embedding: :class:`Embedder` runs the shared pipeline (:mod:`.pipeline`)
with a network on this computer (widget, CLI, server, learner, Ray workers).

Batches go to a runner, torch (:class:`TorchRunner`) or onnxruntime
(:class:`~.onnx.OnnxRunner`), on the GPU when there is one; a runner is any callable
that maps N x H x W x 3 uint8 images to an N x dim float array. Progress is reported
and cancellation checked between batches; what was embedded before a cancel is
already in the cache. Import the pipeline's names from :mod:`.pipeline`, devices from
:mod:`.devices` and ``Cancelled`` from :mod:`.cancel`, where they are defined.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterable, Iterator, Sequence

import numpy as np

from .budget import PixelBudget, shared_budget
from .cache import EmbeddingCache
from .devices import resolve_backend, resolve_device
from .images import DEFAULT_MAX_PIXELS
from .models import ModelSpec, get_spec
from .pipeline import (BatchResult, EmbeddingResult, ProgressCallback, Step, StepRunner,
                       StopCallback, gather, open_cache, prepare_source, run_steps,
                       vector_cache_key)

__all__ = ["Embedder", "TorchRunner", "embed_images"]

log = logging.getLogger(__name__)


class TorchRunner:
    """Runs an EmbeddingNet with torch: channels-last, with fp16 autocast on a GPU."""

    def __init__(self, net, device: str):
        import torch
        self.torch = torch
        self.device = torch.device(device)
        self.net = net.eval().to(self.device, memory_format=torch.channels_last)
        self.amp = self.device.type == "cuda"
        if self.amp:
            torch.backends.cudnn.benchmark = True  # one input size: pick the fastest kernels

    def __call__(self, images: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(images).to(self.device, non_blocking=True)
            autocast = (torch.autocast("cuda", dtype=torch.float16) if self.amp
                        else contextlib.nullcontext())
            with autocast:
                out = self.net(x)
            return out.float().cpu().numpy()


class Embedder(StepRunner):
    """A loaded network ready to embed; load once, call many times.

    It is the :class:`~.pipeline.StepRunner` that :func:`~.pipeline.run_steps` drives:
    one step at a time, in the caller's thread.

    ``net`` embeds with a given :class:`~.networks.EmbeddingNet` (a fine-tuned
    one, say) instead of the registry's pretrained network; then ``weights_id``
    names it for the cache (no cache without one). ``random_weights`` builds an
    untrained network, for tests on machines without the weights. ``image_size``
    overrides the spec's input size (a network fine-tuned on smaller images, say);
    vectors of different sizes are cached apart. ``decode_budget`` bounds the pixels
    the decode threads hold at once (default: the process-wide shared_budget()).
    """

    def __init__(self, model: "str | ModelSpec" = "squeezenet", *, device: str = "auto",
                 backend: str = "auto", weights_file: "str | os.PathLike | None" = None,
                 net=None, weights_id: "str | None" = None, random_weights: bool = False,
                 batch_size: "int | None" = None,
                 cache: "EmbeddingCache | bool | str | os.PathLike | None" = True,
                 workers: "int | None" = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                 crop: bool = False, image_size: "int | None" = None,
                 decode_budget: "PixelBudget | None" = None):
        self.spec = get_spec(model)
        self.image_size = int(image_size or self.spec.input_size)
        self.device = resolve_device(device)
        self.backend = resolve_backend(backend, self.device)
        self.max_pixels = max_pixels
        self.crop = crop  # False: resize the whole image; True: central crop first
        # pixels decoded at once by the decode threads (of every Embedder, by default)
        self.decode_budget = decode_budget if decode_budget is not None else shared_budget()
        self.batch_size = batch_size or (64 if self.device.startswith("cuda") else 16)
        self.workers = workers or min(8, os.cpu_count() or 2)
        self._random_weights = random_weights
        self._location = None
        if net is None and not random_weights:
            from .weights import locate_weights
            self._location = locate_weights(self.spec, weights_file)
            weights_id = self._location.identity
        elif net is None:
            weights_id = None  # untrained: nothing to cache
        self.weights_id = weights_id
        self.cache_key = vector_cache_key(self.spec.name, self.weights_id, self.image_size)
        # the network is the same either way (the ONNX export is shared); the vectors are not
        self._vector_key = vector_cache_key(self.spec.name, self.weights_id,
                                            self.image_size, crop)
        self.cache = self._open_cache(cache) if self.cache_key else None
        self._run = self._runner(net, backend)
        self.dim = self.spec.embedding_dim if net is None else self._probe_dim()

    def _runner(self, net, asked: str):
        if self.backend == "onnx":
            from . import onnx
            try:
                if net is None and self.cache_key:  # exported before: no need for torch
                    runner = onnx.OnnxRunner.from_cache(self.spec, self.cache_key, self.device)
                    if runner is not None:
                        return runner
                if net is None:
                    net = self._build_network()
                return onnx.OnnxRunner.for_network(net, self.spec, self.device,
                                                   cache_name=self.cache_key,
                                                   image_size=self.image_size)
            except Exception as exc:
                if asked == "onnx":
                    raise
                log.warning("ONNX export failed (%s); embedding with torch instead.", exc)
                self.backend = "torch"
        return TorchRunner(net if net is not None else self._build_network(), self.device)

    def _build_network(self):
        """The registry's network, with its pretrained weights unless random ones were asked."""
        from .networks import EmbeddingNet, build_backbone
        backbone = build_backbone(self.spec)
        if not self._random_weights:
            from .weights import load_pretrained
            load_pretrained(backbone, self.spec, self._location)
        return EmbeddingNet(self.spec, backbone)

    _open_cache = staticmethod(open_cache)

    def _probe_dim(self) -> int:
        size = self.image_size
        return int(self._run(np.zeros((1, size, size, 3), np.uint8)).shape[1])

    def embed_arrays(self, images: np.ndarray) -> np.ndarray:
        """Embed a uint8 batch, N x H x W x 3 RGB, already resized to the input size."""
        images = np.ascontiguousarray(images, dtype=np.uint8)
        if images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"expected N x H x W x 3 uint8 images, got {images.shape}")
        out = []
        for start in range(0, len(images), self.batch_size):
            out.append(self._run(images[start:start + self.batch_size]))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def _prepare(self, source: str):
        """Runs in a worker: (content hash, cached vector or None, decoded image or None)."""
        return prepare_source(source, self.cache, self._vector_key, self.image_size,
                              self.max_pixels, self.crop, self.decode_budget)

    def iter_embed(self, sources: Sequence[str], progress: "ProgressCallback | None" = None,
                   should_stop: "StopCallback | None" = None) -> Iterator[BatchResult]:
        """Embed ``sources`` (paths or URLs) batch by batch, in input order.

        Raises Cancelled when ``should_stop()`` turns true; the batches done
        before are already cached.
        """
        sources = [os.fspath(s) for s in sources]
        return run_steps(sources, self._prepare, self, self.batch_size, self.workers,
                         progress, should_stop)

    def run_step(self, step: Step, done: int) -> BatchResult:
        """Run the network on a step's images, cache them, merge in the cached ones."""
        vectors = None
        if step.images:
            vectors = self._run(np.stack(step.images))
            if self.cache is not None:
                self.cache.put_many(self._vector_key, zip(step.keys, vectors))
        return step.result(vectors, done, self.dim)

    def embed(self, sources: Iterable[str], progress: "ProgressCallback | None" = None,
              should_stop: "StopCallback | None" = None) -> EmbeddingResult:
        """Embed all ``sources``; see iter_embed."""
        sources = [os.fspath(s) for s in sources]
        return gather(sources, self.spec.name, lambda: self.dim,
                      self.iter_embed(sources, progress, should_stop))


def embed_images(sources: Iterable[str], model: "str | ModelSpec" = "squeezenet",
                 progress: "ProgressCallback | None" = None,
                 should_stop: "StopCallback | None" = None, **options) -> EmbeddingResult:
    """One call: load the network, embed ``sources``, return the result."""
    return Embedder(model, **options).embed(sources, progress, should_stop)
