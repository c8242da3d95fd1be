"""Embedding beyond one computer, on Ray (`pip install "Orange3-DeepImage[cluster]"`).

    from orangecontrib.deepimage.cluster import embed_on_ray
    result = embed_on_ray(["photos/"], model="squeezenet", address="local")
    result.embeddings  # the vectors local embedding gives, in the same order

Importing this package does not import Ray; calling ``embed_on_ray`` does (and
says how to install it when it is missing). See doc/scaling.md.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable

from ..core.pipeline import EmbeddingResult
from ..core.images import DEFAULT_MAX_PIXELS, find_images
from ..core.models import get_spec
from .shards import ShardedRun, ShardMismatch, read_shards

__all__ = ["embed_on_ray", "read_shards", "ShardedRun", "ShardMismatch", "RayUnavailable",
           "import_ray", "DEFAULT_SHARD_SIZE"]

DEFAULT_SHARD_SIZE = 10_000


class RayUnavailable(ImportError):
    """Ray (with Ray Data) is not installed."""


def import_ray():
    """Import Ray Data, or raise RayUnavailable saying how to install it."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayUnavailable(
            f"Embedding on Ray needs Ray Data ({exc}): pip install "
            "\"Orange3-DeepImage[cluster]\" (or pip install \"ray[data]\").") from exc


def embed_on_ray(paths: "Iterable[str | os.PathLike] | str | os.PathLike",
                 model: str = "squeezenet", *, address: "str | None" = None,
                 output_dir: "str | os.PathLike | None" = None,
                 shard_size: int = DEFAULT_SHARD_SIZE, device: str = "auto",
                 backend: str = "auto", batch_size: "int | None" = None,
                 weights_file: "str | os.PathLike | None" = None, cache: bool = True,
                 max_pixels: int = DEFAULT_MAX_PIXELS, crop: bool = False,
                 workers: "int | None" = None, actors: "int | None" = None,
                 cpus_per_actor: "float | None" = None,
                 gpus_per_actor: "float | None" = None, rows_per_call: int = 256,
                 retries: int = 3, runtime_env: "dict | None" = None,
                 progress: "Callable[[int, int], None] | None" = None,
                 **ray_init_options) -> "EmbeddingResult | ShardedRun":
    """Embed the images in ``paths`` (files, folders, URLs) on Ray.

    ``address``: 'local' (or None) starts Ray on this computer, 'auto' or
    'ray://host:10001' joins a cluster; a process already connected to Ray (ray.init
    before) uses that one, whatever the address. Each actor holds one Embedder built
    with the usual options (model, device, backend, batch_size, weights_file, cache,
    max_pixels, crop, workers: its decoding threads); weights and the embedding cache
    are looked up on the node the actor runs on. ``actors``, ``cpus_per_actor``,
    ``gpus_per_actor``: the pool (default: one actor per GPU, else one per 4 CPUs);
    ``rows_per_call``: paths per actor call, the unit Ray reruns when a worker dies
    (``retries`` times at most).

    Without ``output_dir``: an EmbeddingResult in input order, as local embedding
    returns it. With it: Parquet shards of ``shard_size`` images plus manifest.json
    written there; a rerun embeds only unfinished shards. Returns a ShardedRun.
    ``ray_init_options`` go to ray.init (num_cpus, object_store_memory, ...).
    """
    from ..core.weights import locate_weights
    spec = get_spec(model)  # an unknown name fails here, before Ray starts
    sources = find_images(paths)
    if not sources:
        raise ValueError("No images found in " + ", ".join(
            map(os.fspath, [paths] if isinstance(paths, (str, os.PathLike)) else paths)))
    import_ray()
    from .ray_embed import RaySettings, ray_session, run_on_ray
    options = {"device": device, "backend": backend, "batch_size": batch_size,
               "weights_file": os.fspath(weights_file) if weights_file else None,
               "cache": cache, "max_pixels": int(max_pixels), "crop": crop,
               "workers": workers}
    plan = None
    if output_dir is not None:
        from .shards import ShardPlan
        plan = ShardPlan.open(output_dir, sources, shard_size, {
            "model": spec.name, "weights": _weights_identity(locate_weights, spec, weights_file),
            "crop": crop, "max_pixels": int(max_pixels)})
    settings = RaySettings(actors=actors, cpus_per_actor=cpus_per_actor,
                           gpus_per_actor=gpus_per_actor, rows_per_call=rows_per_call,
                           retries=retries, runtime_env=runtime_env)
    if plan is not None and not plan.pending():  # a rerun of a finished run: no Ray needed
        return ShardedRun(plan.directory, plan.count, 0, plan.count, 0, 0, 0.0)
    with ray_session(address, **ray_init_options):
        return run_on_ray(sources, spec.name, options, settings, plan, progress)


def _weights_identity(locate, spec, weights_file) -> "str | None":
    """The weights' identity for the manifest, when this computer can tell it (a
    cluster's driver may have no weights: then the model name must do)."""
    try:
        return locate(spec, weights_file).identity
    except Exception:
        return None
