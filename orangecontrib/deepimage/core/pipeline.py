"""The embedding pipeline's front end, shared by every way of embedding.

Files are read, hashed, looked up in the cache and decoded by a thread pool
(Pillow releases the GIL), a bounded window ahead of the consumer, so memory
stays flat however many images there are (:func:`iter_steps`, :func:`prepare_source`).
Each :class:`Step` holds what one batch needs; a :class:`StepRunner` (a local
:class:`~.embed.Embedder` with torch or onnxruntime, the remote client with either
wire protocol; Ray workers use an Embedder) turns it into a :class:`BatchResult`.
:func:`run_steps` is the one loop that drives a runner (in the caller's thread, or
with several steps in flight), and :func:`gather` collects its batches into an
:class:`EmbeddingResult`.
"""
from __future__ import annotations

import collections
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from .budget import PixelBudget, shared_budget
from .cache import EmbeddingCache, content_hash
from .cancel import Cancelled, ProgressCallback, StopCallback
from .images import ImageError, Skipped, decode_image, read_bytes

__all__ = ["PIPELINE_VERSION", "ProgressCallback", "StopCallback", "BatchResult",
           "EmbeddingResult", "Prepared", "Step", "vector_cache_key", "open_cache", "prepare_source",
           "iter_steps", "StepRunner", "run_steps", "gather"]

log = logging.getLogger(__name__)

# Bump when decoding or resizing changes, so cached vectors of the old pipeline are not reused.
PIPELINE_VERSION = "2"



def vector_cache_key(model: str, weights_id: "str | None", input_size: int,
                     crop: bool = False) -> "str | None":
    """The cache's model key for vectors of ``model`` with these weights and preprocessing.

    Local and remote embedding (client/remote_embedder.py) build it the same way, so vectors of the
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


class Prepared(NamedTuple):
    """What ``prepare(source)`` delivers to a step: a cached vector, or an image to embed.

    ``key`` is the content hash the vector is cached under (None without a cache).
    """

    key: "str | None"
    vector: "np.ndarray | None"
    image: Any

    @classmethod
    def cached(cls, key: str, vector: np.ndarray) -> "Prepared":
        return cls(key, vector, None)

    @classmethod
    def decoded(cls, image: Any, key: "str | None" = None) -> "Prepared":
        return cls(key, None, image)


@dataclass
class Step:
    """What the decoders delivered for one step of the pipeline: images to embed
    (with their content keys, input positions and sources), cached vectors, and skips."""

    images: list = field(default_factory=list)
    keys: list = field(default_factory=list)
    indices: list = field(default_factory=list)
    sources: list = field(default_factory=list)  # of ``images``, to name their skips
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
                self.sources.append(source)

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
    """Runs in a decoding thread: the source's :class:`Prepared` (its content hash, and
    its cached vector or its decoded image). Shared by local and remote embedding
    (client/remote_embedder.py); ImageError if unusable.
    Decoding waits for room in ``budget`` (default: the process-wide shared_budget())."""
    data = read_bytes(source)
    key = content_hash(data) if cache is not None else None
    if key is not None:
        vector = cache.get(cache_key, key)
        if vector is not None:
            return Prepared.cached(key, vector)
    return Prepared.decoded(decode_image(data, (size, size), max_pixels, crop,
                                         budget if budget is not None else shared_budget()), key)


def iter_steps(sources: Sequence[str], prepare: Callable[[str], Prepared], batch_size: int, workers: int,
               window: int, should_stop: "StopCallback | None" = None) -> Iterator[Step]:
    """The pipeline's steps, in input order: ``prepare(source)`` (a :class:`Prepared`,
    or ImageError for an unusable source) runs in ``workers``
    threads, at most ``window`` sources ahead of the consumer. A step ends with
    ``batch_size`` images to embed, or after many cache hits and skips, so that progress
    is reported regularly. Raises Cancelled before a step when ``should_stop()`` is true.
    :func:`run_steps` drives it for every runner."""
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
                step = Step()
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


class StepRunner:
    """What :func:`run_steps` needs from whoever runs the network.

    ``run_step(step, done)`` embeds a step's images (and caches them) and returns its
    :class:`BatchResult` (:meth:`Step.result`), ``done`` being the inputs handled so far.
    With ``in_flight`` 1 steps run one by one in the consumer's thread; with more, up
    to ``in_flight`` run at once in threads (a remote server), results still in order.
    ``start``/``stop`` bracket a run (``stop`` also on a cancel or an error), and
    ``check_step(step)`` may raise before a step is run.
    """

    in_flight: int = 1

    def run_step(self, step: Step, done: int) -> BatchResult:
        raise NotImplementedError

    def check_step(self, step: Step) -> None:
        """Raise to end the run before ``step`` is sent to the network."""

    def start(self) -> None:
        """A run begins."""

    def stop(self) -> None:
        """The run ended, was cancelled or failed."""


def run_steps(sources: Sequence[str], prepare: Callable[[str], Prepared], runner: StepRunner,
              batch_size: int, workers: int, progress: "ProgressCallback | None" = None,
              should_stop: "StopCallback | None" = None) -> Iterator[BatchResult]:
    """The pipeline, driven: :func:`iter_steps` of ``sources`` run by ``runner``,
    yielding its batches in input order, reporting ``progress(done, total)`` after each.

    Decoding runs up to ``2 * batch_size * runner.in_flight`` (at least ``4 * workers``)
    sources ahead. Raises Cancelled when ``should_stop()`` turns true, between steps and
    while waiting for one in flight; what was embedded before is already cached.
    """
    in_flight = max(1, int(runner.in_flight))
    window = max(2 * batch_size * in_flight, 4 * workers)
    total = len(sources)

    def stopping() -> bool:
        return should_stop is not None and should_stop()

    steps = iter_steps(sources, prepare, batch_size, workers, window)
    pool = (ThreadPoolExecutor(in_flight, thread_name_prefix="deepimage-run")
            if in_flight > 1 else None)
    running: collections.deque[tuple[Future, int]] = collections.deque()
    taken = 0  # inputs put into steps
    runner.start()
    try:
        while taken < total or running:
            if stopping():
                raise Cancelled()
            if pool is None:
                step = next(steps)
                taken += step.handled
                runner.check_step(step)
                result = runner.run_step(step, taken)
            else:
                while taken < total and len(running) < in_flight:
                    step = next(steps)
                    taken += step.handled
                    runner.check_step(step)
                    running.append((pool.submit(runner.run_step, step, taken), taken))
                future, _ = running.popleft()
                while not future.done():  # wait, but notice a cancel promptly
                    wait_futures([future], timeout=0.1)
                    if stopping():
                        raise Cancelled()
                result = future.result()
            if progress is not None:
                progress(result.done, total)
            yield result
    finally:
        runner.stop()  # before the cleanup: a remote runner ends its retry waits
        for future, _ in running:
            future.cancel()
        steps.close()  # cancels the decoding still queued
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def gather(sources: list[str], model: str, dim: Callable[[], int],
           batches: Iterable[BatchResult]) -> EmbeddingResult:
    """Collect a pipeline's batches into one EmbeddingResult, timed from the first call.

    Shared by local and remote embedding (client/remote_embedder.py); ``dim()`` is read at the end,
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
