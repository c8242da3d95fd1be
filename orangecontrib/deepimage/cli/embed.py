"""`deepimage models | embed`: list the networks, embed images into vectors.

Everything here calls core/ (and data.py for Orange tables); nothing is
computed twice. Exit codes: 0 when something was embedded, 1 when nothing
could be, 2 for wrong arguments.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from ..core.devices import BACKENDS, DEVICES
from ..core.models import models_help
from . import ray
from .common import ProgressBar, fail
from .output import OutputNotWritten, write_output

__all__ = ["register", "cmd_models", "cmd_embed"]

OUTPUT_FORMATS = (".csv", ".tab", ".npy")


def register(commands) -> None:
    """Add the models and embed sub-commands to the `deepimage` subparsers."""
    models = commands.add_parser("models", help="list the networks and whether their weights "
                                                "are on this computer")
    models.add_argument("--all", action="store_true",
                        help="also every torchvision classification network (any of them "
                             "works by name), with where its weights file is or goes")
    models.set_defaults(run=cmd_models)

    embed = commands.add_parser(
        "embed", help="embed images into feature vectors",
        description="Embed images with a network's penultimate layer. PATH is image files "
                    "or folders (searched recursively). Without -o, CSV goes to stdout.")
    embed.add_argument("paths", nargs="+", metavar="PATH")
    embed.add_argument("-m", "--model", default="squeezenet", help=models_help())
    embed.add_argument("-o", "--output", metavar="FILE",
                       help="write .csv (image, n0..), .tab (Orange table) or .npy")
    embed.add_argument("--device", default="auto", choices=DEVICES,
                       help="where the network runs (default: a GPU when there is one)")
    embed.add_argument("--backend", default="auto", choices=BACKENDS,
                       help="auto: onnxruntime on the CPU, torch on a GPU")
    embed.add_argument("--batch-size", type=int, default=None, metavar="N",
                       help="images per network call (default 16 on CPU, 64 on GPU)")
    embed.add_argument("--workers", type=int, default=None, metavar="N",
                       help="decoding threads (default: the number of cores, at most 8)")
    embed.add_argument("--weights", metavar="FILE", default=None,
                       help="a weights file to use instead of the standard one")
    embed.add_argument("--max-pixels", type=float, default=None, metavar="N",
                       help="skip images with more pixels than this (default 100 million)")
    embed.add_argument("--crop", action="store_true",
                       help="keep the central square instead of resizing the whole image")
    embed.add_argument("--no-cache", action="store_true",
                       help="neither read nor write the embedding cache")
    embed.add_argument("--server", metavar="URL", default=None,
                       help="embed on an embedding server (`deepimage serve`, or one speaking "
                            "Orange's protocol) instead of this computer")
    embed.add_argument("--token-file", metavar="FILE", default=None,
                       help="the server's access token (or DEEPIMAGE_SERVER_TOKEN)")
    embed.add_argument("-q", "--quiet", action="store_true",
                       help="no progress bar and no summary")
    ray.add_options(embed)
    embed.set_defaults(run=cmd_embed)


def cmd_models(args: argparse.Namespace) -> int:
    from ..core.catalogue import registered_rows, torchvision_rows
    rows, notes = registered_rows()
    _print_table([("name", "network", "dim", "input", "parameters", "weights")] + rows)
    if notes:
        print()
        for note in notes:
            print(note)
    if args.all:
        print("\nAny torchvision classification network, by name (embedding: the input of "
              "its last layer):")
        _print_table([("name", "input", "parameters", "weights")] + torchvision_rows())
    return 0


def _print_table(rows: "list[tuple[str, ...]]") -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def cmd_embed(args: argparse.Namespace) -> int:
    from ..core.local_embedder import Embedder
    from ..core.images import DEFAULT_MAX_PIXELS, find_images
    from ..core.models import UnknownModel
    from ..core.weights import WeightsUnavailable

    wrong = ray.check_options(args)
    if wrong:
        return fail(str(wrong))
    if args.output and not args.shards \
            and os.path.splitext(args.output)[1].lower() not in OUTPUT_FORMATS:
        return fail(f"the output must end in {', '.join(OUTPUT_FORMATS)} "
                    "(or be a folder, with --ray and --shards)")
    if args.batch_size is not None and args.batch_size < 1:
        return fail("--batch-size must be at least 1")
    missing = [p for p in args.paths if not os.path.exists(p) and "://" not in p]
    if missing:
        return fail(f"no such file or folder: {', '.join(missing)}")
    sources = find_images(args.paths)
    if not sources:
        return fail("no images found in " + ", ".join(args.paths))
    if args.ray and args.shards:
        return ray.run_sharded(args, sources, ProgressBar(enabled=False if args.quiet else None))
    if args.ray:
        try:
            embedder = ray.RayEmbedder(args)
        except (UnknownModel, ImportError) as exc:
            return fail(str(exc))
    elif args.server:
        try:
            embedder = _remote_embedder(args)
        except ValueError as exc:
            return fail(str(exc))
    else:
        try:
            embedder = Embedder(args.model, device=args.device, backend=args.backend,
                                batch_size=args.batch_size, workers=args.workers,
                                weights_file=args.weights, cache=not args.no_cache,
                                max_pixels=int(args.max_pixels or DEFAULT_MAX_PIXELS),
                                crop=args.crop)
        except (UnknownModel, WeightsUnavailable, ValueError) as exc:
            return fail(str(exc))
    bar = ProgressBar(enabled=False if args.quiet else None)
    try:
        result = embedder.embed(sources, progress=bar)
    except _remote_errors() as exc:  # the server went away or refused mid-run
        bar.close()
        return fail(f"{exc} Images embedded so far are cached.", 1)
    except KeyboardInterrupt:
        bar.close()
        print("deepimage: interrupted; images embedded so far are cached.", file=sys.stderr)
        return 130
    finally:
        bar.close()
    embedded = len(result.indices)
    not_written = None
    if embedded:
        try:
            write_output(args.output, result, sources)
        except OutputNotWritten as exc:  # the vectors were kept elsewhere: it says where
            not_written = exc
    if not args.quiet:
        _summary(result, embedder, sys.stderr)
    return fail(str(not_written), 1) if not_written else 0 if embedded else 1


def _remote_errors() -> tuple:
    """The client's and Ray's errors, when loaded (local runs import neither)."""
    client = sys.modules.get("orangecontrib.deepimage.client")
    ray_run = sys.modules.get("orangecontrib.deepimage.cluster.ray_embed")
    return ((client.RemoteError,) if client is not None else ()) \
        + ((ray_run.RayRunFailed,) if ray_run is not None else ())


def _remote_embedder(args: argparse.Namespace):
    """`embed --server`: a RemoteEmbedder; ValueError says why there is none."""
    from ..core.images import DEFAULT_MAX_PIXELS
    if args.weights:
        raise ValueError("--weights is for this computer; a server uses the weights its "
                         "operator loaded")
    from ..client import RemoteEmbedder, RemoteError, read_token
    try:
        token = read_token(args.token_file)
    except OSError as exc:
        raise ValueError(f"cannot read the token file: {exc}") from None
    try:
        return RemoteEmbedder(args.server, args.model, token=token,
                              batch_size=args.batch_size or 16, workers=args.workers,
                              cache=not args.no_cache, crop=args.crop,
                              max_pixels=int(args.max_pixels or DEFAULT_MAX_PIXELS))
    except RemoteError as exc:
        raise ValueError(str(exc)) from None


def _summary(result, embedder, stream: TextIO, limit: int = 20) -> None:
    embedded, skipped = len(result.indices), len(result.skipped)
    cached = f" ({result.cached} from the cache)" if result.cached else ""
    name = getattr(embedder, "display_name", None) or embedder.spec.display_name
    print(f"Embedded {embedded} image{'s' * (embedded != 1)}{cached} with "
          f"{name} ({embedder.backend}, {embedder.device}); "
          f"skipped {skipped}; {result.seconds:.1f} s, {result.rate:.1f} images/s.", file=stream)
    for item in result.skipped[:limit]:
        print(f"  skipped {item.source}: {item.reason}", file=stream)
    if skipped > limit:
        print(f"  ... and {skipped - limit} more skipped", file=stream)
