"""`deepimage explain`: where a trained network looks, as overlay PNGs and JSON.

Registered with ``register(commands)``; the work is
core.explain's (Explainer, save_overlays). Exit codes: 0 done, 1 no image could be
explained, 2 wrong arguments, 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..core.devices import DEVICES
from .common import ProgressBar, fail, load_model

__all__ = ["register", "cmd_explain"]


def register(commands) -> None:
    """Add the explain sub-command to the `deepimage` subparsers."""
    explain = commands.add_parser(
        "explain", help="show where a network looks (Grad-CAM heatmaps)",
        description="Grad-CAM heatmaps of a trained model's predictions: one overlay PNG "
                    "per image in DIR (red: where the features that raised the predicted "
                    "class are). MODEL is a .pkcls saved by `deepimage train` or the Trainer, "
                    "or a network's name (squeezenet, vgg16, ...) for its ImageNet "
                    "original. PATH is image files or folders (searched recursively).")
    explain.add_argument("model", metavar="MODEL.pkcls",
                         help="a model saved by `deepimage train` or the Trainer (Save "
                              "Model), or squeezenet, vgg16, vgg19 or inception-v3")
    explain.add_argument("paths", nargs="+", metavar="PATH", help="images or folders")
    explain.add_argument("-o", "--output", metavar="DIR",
                         help="write an overlay PNG per image into DIR (made if needed)")
    explain.add_argument("--json", action="store_true",
                         help='print a JSON list of {"path", "predicted", "probability", '
                              '"peak_x", "peak_y"} (the heatmap\'s maximum in the original '
                              'image\'s pixels, x right, y down; "overlay" with -o)')
    explain.add_argument("--layer", metavar="NAME", default=None,
                         help="the layer to explain (default: the last convolutional "
                              "block, e.g. features.fire9 for SqueezeNet)")
    explain.add_argument("--max-side", type=int, default=1024, metavar="N",
                         help="overlays at most N pixels a side (default 1024; 0: the "
                              "original size)")
    explain.add_argument("--device", default="auto", choices=DEVICES)
    explain.add_argument("--batch-size", type=int, default=None, metavar="N",
                         help="images per network call (default 8 on CPU, 32 on GPU)")
    explain.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")
    explain.add_argument("--random-weights", action="store_true", help=argparse.SUPPRESS)
    explain.set_defaults(run=cmd_explain)


def cmd_explain(args: argparse.Namespace) -> int:
    from ..core.explain import Explainer, NotOurModel, save_overlays
    from ..core.images import find_images
    from ..core.models import UnknownModel, get_spec
    from ..core.weights import WeightsUnavailable

    if not args.output and not args.json:
        return fail("nothing to do: give -o DIR for overlays, --json, or both")
    if args.batch_size is not None and args.batch_size < 1:
        return fail("--batch-size must be at least 1")
    missing = [p for p in args.paths if not os.path.exists(p) and "://" not in p]
    if missing:
        return fail(f"no such file or folder: {', '.join(missing)}")
    try:
        model = args.model
        if os.path.exists(model) or model.endswith(".pkcls"):
            model = load_model(model)
        else:
            get_spec(model)  # a network's name: its ImageNet original
        explainer = Explainer.for_model(model, layer=args.layer, device=args.device,
                                        batch_size=args.batch_size,
                                        random_weights=args.random_weights)
    except UnknownModel:
        return fail(f"no such file: {args.model} (nor is it a network's name: "
                      f"squeezenet, vgg16, vgg19 or inception-v3)")
    except (NotOurModel, WeightsUnavailable, ValueError) as exc:
        return fail(str(exc))
    sources = find_images(args.paths)
    if not sources:
        return fail("no images found in " + ", ".join(args.paths))
    bar = ProgressBar(enabled=False if args.quiet else None)
    try:
        result = explainer.explain(sources, progress=bar)
    except KeyboardInterrupt:
        bar.close()
        print("deepimage: interrupted.", file=sys.stderr)
        return 130
    finally:
        bar.close()
    records = [e.as_dict() for e in result.explanations]
    if args.output:
        written = save_overlays(result.explanations, args.output, args.max_side or None)
        for record, path in zip(records, written):
            record["overlay"] = path
    if args.json:
        print(json.dumps(records, indent=1))
    if not args.quiet:
        done = len(result.explanations)
        where = f"; overlays in {args.output}" if args.output and done else ""
        print(f"Explained {done} image{'s' * (done != 1)} with "
              f"{explainer.spec.display_name} (layer {explainer.layer}, {explainer.device})"
              f"; skipped {len(result.skipped)}{where}.", file=sys.stderr)
        for item in result.skipped[:20]:
            print(f"  skipped {item.source}: {item.reason}", file=sys.stderr)
    return 0 if result.explanations else 1
