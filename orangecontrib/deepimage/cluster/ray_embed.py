"""Embedding on a Ray cluster: Ray Data streams the paths to a pool of our Embedders.

The driver lists the images (core.images.find_images, so the order is the one local
embedding uses), Ray Data turns the list into a dataset (``from_items``) and
``map_batches`` sends batches of paths to an actor pool of :class:`EmbedActor`, each
holding one core :class:`~orangecontrib.deepimage.core.local_embedder.Embedder` (one actor
per GPU, or per ``cpus_per_actor`` CPUs). The actors read and decode the files
themselves, so the paths must be readable on every node (a shared folder, or URLs).

Ray restarts an actor that dies (``max_restarts``) and runs its unfinished batch
again (``max_task_retries``); a batch's rows reach the driver only when the batch
has finished, so a retried batch is neither lost nor counted twice (the driver
checks both). Results come back to the driver, which either gathers them in input
order or writes each finished shard (cluster/shards.py).

This is the only module that imports Ray.
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..core.local_embedder import Embedder

from ..core.pipeline import EmbeddingResult
from ..core.images import Skipped
from .shards import ShardedRun, ShardPlan

__all__ = ["EmbedActor", "RaySettings", "RayRunFailed", "run_on_ray", "ray_session",
           "CRASH_ONCE_VARIABLE"]

log = logging.getLogger(__name__)

# A fault-tolerance drill: when set to a file path, the first actor call that manages
# to create that file exits its process at once, as a killed worker would.
CRASH_ONCE_VARIABLE = "DEEPIMAGE_RAY_CRASH_ONCE"


class RayRunFailed(RuntimeError):
    """The run on Ray failed (a worker's error, or rows lost or repeated)."""


class EmbedActor:
    """One Embedder in a Ray actor; called by map_batches with a batch of paths."""

    def __init__(self, model: str, options: dict):
        self.embedder = Embedder(model, **options)

    def __call__(self, batch: dict) -> dict:
        _crash_once_if_asked()
        paths = [str(p) for p in batch["path"]]
        indices = np.asarray(batch["index"], dtype=np.int64)
        vectors = np.full((len(paths), self.embedder.dim), np.nan, np.float32)
        reasons = np.full(len(paths), "", dtype=object)
        cached = np.zeros(len(paths), np.int64)  # the batch's cache hits, on its first row
        for step in self.embedder.iter_embed(paths):
            vectors[step.indices] = step.vectors
            for item in step.skipped:
                reasons[item.index] = item.reason or "skipped"
            cached[0] += step.cached
        return {"index": indices, "vector": vectors, "reason": reasons, "cached": cached}


def _crash_once_if_asked() -> None:
    marker = os.environ.get(CRASH_ONCE_VARIABLE)
    if not marker:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os._exit(1)


@dataclass
class RaySettings:
    """How the work is spread: actors, their resources, batches and retries."""

    actors: "int | None" = None  # default: one per GPU, or per cpus_per_actor CPUs
    cpus_per_actor: "float | None" = None  # default: 4 (at most the cluster's CPUs)
    gpus_per_actor: "float | None" = None  # default: 1 when the cluster has GPUs
    rows_per_call: int = 256  # paths per actor call (the unit Ray retries)
    retries: int = 3  # restarts of a dead actor, and reruns of its batch
    runtime_env: "dict | None" = None  # Ray's runtime_env for the actors (env_vars, pip)


class ray_session:
    """Connect to Ray for the length of a ``with``: 'local' or None starts Ray on this
    computer, 'auto' or a ``ray://`` address joins a cluster. A process already
    connected (``ray.init`` before) keeps its Ray, whatever the address; only a Ray
    started here is shut down at the end."""

    def __init__(self, address: "str | None" = None, **init_options):
        self.address = address
        self.init_options = init_options
        self.started = False

    def __enter__(self):
        import ray
        if ray.is_initialized():
            return ray
        options = {"include_dashboard": False, "logging_level": logging.WARNING,
                   "log_to_driver": False, **self.init_options}
        if self.address in (None, "local"):
            ray.init(**options)
        else:
            for key in ("num_cpus", "num_gpus", "object_store_memory", "include_dashboard"):
                options.pop(key, None)  # a cluster has its own
            ray.init(address=self.address, **options)
        self.started = True
        return ray

    def __exit__(self, *exc) -> None:
        if self.started:
            import ray
            ray.shutdown()


def _pool(ray, device: str, settings: RaySettings) -> tuple[int, float, float]:
    """(actors, CPUs per actor, GPUs per actor) for this cluster."""
    resources = ray.cluster_resources()
    cpus, gpus = float(resources.get("CPU", 1)), int(resources.get("GPU", 0))
    if device.startswith("cuda") and not gpus and not settings.gpus_per_actor:
        raise ValueError("The Ray cluster has no GPU: choose device 'cpu' or 'auto', or "
                         "add GPU nodes.")
    gpu_wanted = device != "cpu" and gpus > 0
    gpu_each = settings.gpus_per_actor if settings.gpus_per_actor is not None \
        else (1.0 if gpu_wanted else 0.0)
    if gpu_each:
        cpu_each = settings.cpus_per_actor or 1.0
        actors = settings.actors or max(1, int(gpus / gpu_each))
    else:
        cpu_each = min(settings.cpus_per_actor or 4.0, cpus)
        actors = settings.actors or max(1, int(cpus // cpu_each))
    return actors, cpu_each, gpu_each


def run_on_ray(sources: Sequence[str], model: str, options: dict, settings: RaySettings,
               plan: "ShardPlan | None" = None,
               progress: "Callable[[int, int], None] | None" = None
               ) -> "EmbeddingResult | ShardedRun":
    """Embed ``sources`` with the actor pool of the connected Ray.

    Without a ``plan``: all rows, gathered in input order. With one: only its pending
    shards are embedded, each written as soon as all its rows are back; the result
    says what was written (read the vectors with ShardedRun.read()).
    """
    import ray
    import ray.data

    start = time.perf_counter()
    total = len(sources)
    pending = plan.pending() if plan is not None else []
    todo = list(range(total)) if plan is None else \
        [i for shard in pending for i in plan.rows(shard)]
    actors, cpu_each, gpu_each = _pool(ray, options.get("device", "auto"), settings)
    options = dict(options)
    if not gpu_each:  # CPU actors decode with as many threads as they have CPUs
        options["device"] = "cpu"
        options["workers"] = options.get("workers") or max(1, int(cpu_each))
    # a GPU actor reserves one CPU (a GPU node may have few) and decodes with the
    # Embedder's default threads, enough to keep its GPU fed

    done = total - len(todo)
    if progress is not None:
        progress(done, total)
    seen = np.ones(total, dtype=bool)  # the rows of finished shards need no answer
    seen[todo] = False
    indices, vectors, reasons, cached = [], [], [], 0
    buffers: dict[int, list] = {}
    context = ray.data.DataContext.get_current()
    bars = context.enable_progress_bars, context.enable_operator_progress_bars
    try:
        context.enable_progress_bars = False  # ours is on stderr
        context.enable_operator_progress_bars = False
        for batch in _embedded_batches(ray, sources, todo, model, options, settings,
                                       actors, cpu_each, gpu_each):
            index = np.asarray(batch["index"], dtype=np.int64)
            if seen[index].any():
                raise RayRunFailed(f"Ray returned images twice (positions "
                                   f"{index[seen[index]][:5].tolist()}); run stopped.")
            seen[index] = True
            batch_cached = int(np.asarray(batch["cached"]).sum())
            cached += batch_cached
            if plan is None:
                indices.append(index)
                vectors.append(np.asarray(batch["vector"], dtype=np.float32))
                reasons += [str(r) for r in batch["reason"]]
            else:
                _collect_shards(plan, buffers, batch, index, batch_cached)
            done += len(index)
            if progress is not None:
                progress(done, total)
    finally:
        context.enable_progress_bars, context.enable_operator_progress_bars = bars
    if not seen.all():
        lost = np.flatnonzero(~seen)
        raise RayRunFailed(f"Ray lost {len(lost)} images (positions {lost[:5].tolist()}); "
                           "run again.")
    if plan is not None:
        return ShardedRun(plan.directory, plan.count, len(pending), plan.count - len(pending),
                          len(todo), cached, time.perf_counter() - start)
    return _gathered(sources, model, indices, vectors, reasons, cached,
                     time.perf_counter() - start)


def _embedded_batches(ray, sources: Sequence[str], todo: list[int], model: str,
                      options: dict, settings: RaySettings, actors: int, cpu_each: float,
                      gpu_each: float):
    """The actor pool's output batches (index, vector, reason, cached), as they finish."""
    if not todo:
        return
    rows = settings.rows_per_call
    dataset = ray.data.from_items(
        [{"index": i, "path": sources[i]} for i in todo],
        override_num_blocks=max(1, min(-(-len(todo) // rows), 2000)))
    arguments = dict(fn_constructor_args=(model, options), batch_size=rows,
                     batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
                     num_cpus=cpu_each, num_gpus=gpu_each or None,
                     runtime_env=settings.runtime_env)
    with warnings.catch_warnings():
        # Ray 2.60 deprecates passing actor options this way but has no other for them;
        # without them Ray Data restarts actors without limit (a file that crashed the
        # decoder every time would never end the run)
        warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
        try:
            embedded = dataset.map_batches(EmbedActor, **arguments,
                                           max_restarts=settings.retries,
                                           max_task_retries=settings.retries)
        except TypeError:  # a Ray that no longer takes them: its defaults, then
            log.warning("This Ray takes no limit on actor restarts: retries=%d is ignored.",
                        settings.retries)
            embedded = dataset.map_batches(EmbedActor, **arguments)
    yield from embedded.iter_batches(batch_size=None, batch_format="numpy")


def _collect_shards(plan: ShardPlan, buffers: dict, batch: dict, index: np.ndarray,
                    batch_cached: int) -> None:
    """Add a batch's rows to their shards' buffers; write each shard that is complete."""
    vector = np.asarray(batch["vector"], dtype=np.float32)
    shard_of = index // plan.shard_size
    for shard in np.unique(shard_of):
        mine = shard_of == shard
        parts = buffers.setdefault(int(shard), [[], [], [], 0, 0])
        parts[0].append(index[mine])
        parts[1].append(vector[mine])
        parts[2] += [str(r) for r in np.asarray(batch["reason"])[mine]]
        parts[3] += len(index[mine])
        # the batch's cache hits are counted on its first shard
        parts[4] += batch_cached if shard == shard_of[0] else 0
        if parts[3] == len(plan.rows(int(shard))):
            del buffers[int(shard)]
            plan.write(int(shard), np.concatenate(parts[0]), np.concatenate(parts[1]),
                       parts[2], parts[4])


def _gathered(sources: Sequence[str], model: str, indices: list, vectors: list,
              reasons: list, cached: int, seconds: float) -> EmbeddingResult:
    """The rows in input order, as local embedding returns them."""
    index = np.concatenate(indices) if indices else np.zeros(0, np.int64)
    order = np.argsort(index, kind="stable")
    index = index[order]
    matrix = np.concatenate(vectors)[order] if vectors else np.zeros((0, 0), np.float32)
    reasons = [reasons[i] for i in order]
    ok = np.array([not r for r in reasons], dtype=bool)
    skipped = [Skipped(int(i), sources[int(i)], r) for i, r in zip(index, reasons) if r]
    return EmbeddingResult(list(sources), model, int(matrix.shape[1]) if matrix.ndim == 2 else 0,
                           index[ok], np.ascontiguousarray(matrix[ok]), skipped, cached, seconds)
