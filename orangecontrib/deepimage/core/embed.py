"""The batched embedding pipeline every caller uses (widget, CLI, server, learner).

Files are read, hashed, looked up in the cache and decoded by a thread pool
(Pillow releases the GIL), a bounded window ahead of the network, so memory
stays flat however many images there are. Batches go to the network (torch or
onnxruntime) on the GPU when there is one. Progress is reported and
cancellation checked between batches; what was embedded before a cancel is
already in the cache.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .budget import PixelBudget, shared_budget
from .cache import EmbeddingCache, content_hash
from .images import DEFAULT_MAX_PIXELS, ImageError, Skipped, decode_image, read_bytes
from .models import ModelSpec, get_spec

__all__ = ["Cancelled", "Embedder", "EmbeddingResult", "BatchResult", "resolve_device",
           "embed_images", "PIPELINE_VERSION", "resolve_backend", "vector_cache_key",
           "open_cache", "gather", "prepare_source", "iter_steps", "cuda_possible",
           "DEVICES", "BACKENDS"]

log = logging.getLogger(__name__)

# Bump when decoding or resizing changes, so cached vectors of the old pipeline are not reused.
PIPELINE_VERSION = "2"

ProgressCallback = Callable[[int, int], None]
StopCallback = Callable[[], bool]


class Cancelled(Exception):
    """The caller asked to stop; everything finished before that is kept."""


def vector_cache_key(model: str, weights_id: "str | None", input_size: int,
                     crop: bool = False) -> "str | None":
    """The cache's model key for vectors of ``model`` with these weights and preprocessing.

    Local and remote embedding (client.py) build it the same way, so vectors of the
    same weights share cache entries. None (no caching) when the weights have no identity.
    """
    if not weights_id:
        return None
    return (f"{model}|{weights_id}|{input_size}|p{PIPELINE_VERSION}"
            + ("|crop" if crop else ""))


def open_cache(cache: "EmbeddingCache | bool | str | os.PathLike | None") -> "EmbeddingCache | None":
    """An EmbeddingCache from True (the default file), a path or an instance; None for no cache.

    An unwritable cache folder must not stop embedding: it is logged and None returned.
    """
    if cache is None or cache is False:
        return None
    if isinstance(cache, EmbeddingCache):
        return cache
    try:
        return EmbeddingCache(None if cache is True else cache)
    except Exception as exc:
        log.warning("Embedding without a cache: %s", exc)
        return None


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


DEVICES = ("auto", "cpu", "cuda")  # the choices every caller offers
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


@dataclass
class BatchResult:
    """One step of the pipeline: vectors for ``indices`` (in input order) and skips."""

    indices: list[int]
    vectors: np.ndarray
    skipped: list[Skipped]
    cached: int
    done: int  # inputs handled so far, this batch included


@dataclass
class EmbeddingResult:
    """Embeddings of the inputs that worked, where they came from, and what was skipped."""

    sources: list[str]
    model: str
    dim: int
    indices: np.ndarray  # positions in ``sources`` of the rows of ``embeddings``
    embeddings: np.ndarray  # float32, len(indices) x dim
    skipped: list[Skipped] = field(default_factory=list)
    cached: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Inputs handled per second (embedded, cached and skipped alike)."""
        return len(self.sources) / self.seconds if self.seconds > 0 else float("nan")

    def full(self) -> np.ndarray:
        """len(sources) x dim, skipped inputs as rows of NaN."""
        out = np.full((len(self.sources), self.dim), np.nan, dtype=np.float32)
        out[self.indices] = self.embeddings
        return out


@dataclass
class _Step:
    """What the decoders delivered for one step of the pipeline."""

    images: list = field(default_factory=list)
    keys: list = field(default_factory=list)
    indices: list = field(default_factory=list)
    cached_indices: list = field(default_factory=list)
    cached_vectors: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    @property
    def handled(self) -> int:
        return len(self.indices) + len(self.cached_indices) + len(self.skipped)

    def add(self, index: int, source: str, future: Future) -> None:
        try:
            key, vector, image = future.result()
        except ImageError as exc:
            self.skipped.append(Skipped(index, source, str(exc)))
        except Exception as exc:  # a bug in a decoder must not end the run
            self.skipped.append(
                Skipped(index, source, f"unexpected error ({type(exc).__name__}: {exc})"))
        else:
            if vector is not None:
                self.cached_indices.append(index)
                self.cached_vectors.append(vector)
            else:
                self.images.append(image)
                self.keys.append(key)
                self.indices.append(index)

    def result(self, vectors: "np.ndarray | None", done: int, dim: int) -> BatchResult:
        """Merge the vectors computed for ``images`` with the cached ones, in input order."""
        indices, parts = list(self.indices), []
        if vectors is not None and len(vectors):
            parts.append(vectors.astype(np.float32, copy=False))
        if self.cached_vectors:
            indices += self.cached_indices
            parts.append(np.stack(self.cached_vectors).astype(np.float32, copy=False))
        if not indices:
            return BatchResult([], np.zeros((0, dim), np.float32), self.skipped, 0, done)
        order = np.argsort(indices, kind="stable")
        return BatchResult([indices[i] for i in order], np.concatenate(parts)[order],
                           self.skipped, len(self.cached_indices), done)



def prepare_source(source: str, cache: "EmbeddingCache | None", cache_key: "str | None",
                   size: int, max_pixels: int, crop: bool,
                   budget: "PixelBudget | None" = None):
    """Runs in a decoding thread: (content hash, cached vector or None, decoded image or
    None). Shared by local and remote embedding (client.py); ImageError if unusable.
    Decoding waits for room in ``budget`` (default: the process-wide shared_budget())."""
    data = read_bytes(source)
    key = content_hash(data) if cache is not None else None
    if key is not None:
        vector = cache.get(cache_key, key)
        if vector is not None:
            return key, vector, None
    return key, None, decode_image(data, (size, size), max_pixels, crop,
                                   budget if budget is not None else shared_budget())


def iter_steps(sources: Sequence[str], prepare: Callable, batch_size: int, workers: int,
               window: int, should_stop: "StopCallback | None" = None) -> Iterator[_Step]:
    """The pipeline's steps, in input order: ``prepare(source)`` runs in ``workers``
    threads, at most ``window`` sources ahead of the consumer. A step ends with
    ``batch_size`` images to embed, or after many cache hits and skips, so that progress
    is reported regularly. Raises Cancelled before a step when ``should_stop()`` is true.
    Shared by Embedder and the remote client (client.py)."""
    pending: collections.deque[tuple[int, Future]] = collections.deque()
    todo = iter(enumerate(sources))
    taken = 0
    with ThreadPoolExecutor(workers, thread_name_prefix="deepimage-decode") as pool:
        def take() -> "tuple[int, Future]":
            """The oldest job in flight; keeps ``window`` jobs in flight."""
            while len(pending) <= window:
                item = next(todo, None)
                if item is None:
                    break
                pending.append((item[0], pool.submit(prepare, item[1])))
            return pending.popleft()

        try:
            while taken < len(sources):
                if should_stop is not None and should_stop():
                    raise Cancelled()
                step = _Step()
                while taken + step.handled < len(sources) \
                        and len(step.images) < batch_size \
                        and step.handled < 4 * batch_size:
                    index, future = take()
                    step.add(index, sources[index], future)
                taken += step.handled
                yield step
        finally:
            for _, future in pending:
                future.cancel()

class _TorchRunner:
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


class Embedder:
    """A loaded network ready to embed; load once, call many times.

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
        return _TorchRunner(net if net is not None else self._build_network(), self.device)

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
        window = max(2 * self.batch_size, 4 * self.workers)
        done = 0
        with contextlib.closing(iter_steps(sources, self._prepare, self.batch_size,
                                           self.workers, window, should_stop)) as steps:
            for step in steps:
                result = self._finish(step, done + step.handled)
                done = result.done
                if progress is not None:
                    progress(done, len(sources))
                yield result

    def _finish(self, step: "_Step", done: int) -> BatchResult:
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


def gather(sources: list[str], model: str, dim: Callable[[], int],
           batches: Iterable[BatchResult]) -> EmbeddingResult:
    """Collect a pipeline's batches into one EmbeddingResult, timed from the first call.

    Shared by local and remote embedding (client.py); ``dim()`` is read at the end,
    when a remote server may only then have told it.
    """
    start = time.perf_counter()
    indices, parts, skipped, cached = [], [], [], 0
    for result in batches:
        indices += result.indices
        parts.append(result.vectors)
        skipped += result.skipped
        cached += result.cached
    # steps take inputs in order and sort within themselves, so the rows are already
    # in input order: one concatenation, no reordering copy
    embeddings = (np.concatenate(parts) if indices
                  else np.zeros((0, dim()), np.float32))
    del parts
    indices = np.asarray(indices, dtype=np.int64)
    assert (np.diff(indices) > 0).all(), "the pipeline returned rows out of order"
    skipped.sort(key=lambda s: s.index)
    return EmbeddingResult(sources, model, dim(), indices, embeddings,
                           skipped, cached, time.perf_counter() - start)


def embed_images(sources: Iterable[str], model: "str | ModelSpec" = "squeezenet",
                 progress: "ProgressCallback | None" = None,
                 should_stop: "StopCallback | None" = None, **options) -> EmbeddingResult:
    """One call: load the network, embed ``sources``, return the result."""
    return Embedder(model, **options).embed(sources, progress, should_stop)
