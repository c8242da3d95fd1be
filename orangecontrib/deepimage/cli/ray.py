"""`deepimage embed --ray ADDRESS`: the embed command's options, run on Ray.

embed.py registers the options (``add_options``) and hands over here when --ray is
given; the output formats, progress bar and summary are embed.py's own. Ray itself
is imported only when --ray is given (the cluster extra).
"""
from __future__ import annotations

import argparse
import os
import sys

from ..cluster import DEFAULT_SHARD_SIZE
from .common import fail

__all__ = ["add_options", "check_options", "RayEmbedder", "run_sharded"]


def add_options(embed: argparse.ArgumentParser) -> None:
    """--ray, --shards and --actors on `deepimage embed`."""
    embed.add_argument("--ray", metavar="ADDRESS", default=None,
                       help="embed on Ray: 'local' starts Ray on this computer, 'auto' or "
                            "ray://HOST:10001 joins a cluster (needs the cluster extra: "
                            "pip install \"Orange3-DeepImage[cluster]\")")
    embed.add_argument("--shards", type=int, nargs="?", const=DEFAULT_SHARD_SIZE,
                       default=None, metavar="N",
                       help="with --ray: write -o DIR as Parquet shards of N images "
                            f"(default {DEFAULT_SHARD_SIZE:,}) plus manifest.json; "
                            "a rerun embeds only unfinished shards")
    embed.add_argument("--actors", type=int, default=None, metavar="N",
                       help="with --ray: how many Embedders run at once (default: one per "
                            "GPU, else one per 4 CPUs of the cluster)")


def check_options(args: argparse.Namespace) -> "str | None":
    """Why these options cannot work together, or None."""
    if args.ray is None:
        if args.shards is not None or args.actors is not None:
            return "--shards and --actors go with --ray"
        return None
    if args.server:
        return "choose --server or --ray, not both"
    if args.shards is not None:
        if args.shards < 1:
            return "--shards must be at least 1 image"
        if not args.output or args.output == "-":
            return "--shards writes a folder: give it with -o DIR"
        if os.path.splitext(args.output)[1].lower() in (".csv", ".tab", ".npy"):
            return "--shards writes a folder of Parquet files: give -o a folder, not a file"
    if args.actors is not None and args.actors < 1:
        return "--actors must be at least 1"
    return None


class RayEmbedder:
    """What `deepimage embed` needs of an embedder (embed, and names for its summary),
    embedding on Ray."""

    def __init__(self, args: argparse.Namespace):
        from ..core.images import DEFAULT_MAX_PIXELS
        from ..core.models import get_spec
        from ..cluster import import_ray
        self.spec = get_spec(args.model)  # UnknownModel before Ray starts
        import_ray()  # RayUnavailable (an ImportError) says how to install it
        self.display_name = f"{self.spec.display_name} on Ray"
        self.backend, self.device = args.backend, args.device
        self.address = args.ray
        self.options = dict(
            device=args.device, backend=args.backend, batch_size=args.batch_size,
            weights_file=args.weights, cache=not args.no_cache,
            max_pixels=int(args.max_pixels or DEFAULT_MAX_PIXELS), crop=args.crop,
            workers=args.workers, actors=args.actors)

    def embed(self, sources: list[str], progress=None, output_dir=None, shard_size=None):
        """An EmbeddingResult in input order (a ShardedRun with ``output_dir``); a
        failure on the workers is raised as RayRunFailed."""
        from ..cluster import RayUnavailable, ShardMismatch, embed_on_ray
        from ..cluster.ray_embed import RayRunFailed
        import logging
        # our bar, summary and error line say it all; Ray keeps its full logs in
        # /tmp/ray/session_latest/logs
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)
        try:
            return embed_on_ray(sources, self.spec.name, address=self.address,
                                output_dir=output_dir,
                                shard_size=shard_size or DEFAULT_SHARD_SIZE,
                                progress=progress, **self.options)
        except (ShardMismatch, RayUnavailable, RayRunFailed):
            raise
        except Exception as exc:  # a worker's error, as Ray reports it
            raise RayRunFailed(f"The Ray run failed: {_root_cause(exc).rstrip('.')}.") from exc


def _root_cause(exc: BaseException) -> str:
    """The error a worker raised, without Ray's wrappers around it, in one line (an
    actor that could not start, say, wraps WeightsUnavailable in three Ray errors)."""
    todo, seen = [exc], set()
    while todo:
        error = todo.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        if not type(error).__module__.startswith("ray"):
            text = str(error).strip().splitlines()
            return f"{type(error).__name__}: {text[0] if text else ''}"
        todo += [e for e in (getattr(error, "cause", None), *error.args, error.__cause__,
                             error.__context__) if isinstance(e, BaseException)]
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def run_sharded(args: argparse.Namespace, sources: list[str], bar) -> int:
    """`deepimage embed --ray ADDRESS --shards N -o DIR`: the exit code."""
    from ..cluster.ray_embed import RayRunFailed
    from ..core.models import UnknownModel
    try:
        run = RayEmbedder(args).embed(sources, bar, args.output, args.shards)
    except (UnknownModel, ValueError, ImportError) as exc:
        return fail(str(exc))
    except RayRunFailed as exc:
        return fail(f"{exc} Finished shards are kept: run the same command again to "
                    "embed the rest.", 1)
    except KeyboardInterrupt:
        print("deepimage: interrupted; finished shards are kept: run the same command "
              "again to embed the rest.", file=sys.stderr)
        return 130
    finally:
        bar.close()
    manifest = run.manifest()
    embedded = sum(s["embedded"] for s in manifest["shards"].values())
    skipped = sum(s["skipped"] for s in manifest["shards"].values())
    if not args.quiet:
        print(f"Wrote {run.written} shard{'s' * (run.written != 1)} to {run.directory} "
              f"({run.resumed} of {run.shards} were finished before); {run.images} images "
              f"in {run.seconds:.1f} s. The folder holds {embedded} vectors and {skipped} "
              "skipped images (read them with orangecontrib.deepimage.cluster.read_shards).",
              file=sys.stderr)
    return 0 if embedded else 1
