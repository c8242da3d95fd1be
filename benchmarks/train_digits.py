#!/usr/bin/env python3
"""Fine-tuned SqueezeNet against logistic regression on its embeddings, on sklearn's digits.

The 1,797 8x8 digits are written as 32x32 PNGs in one folder per class. Both methods
run on the same stratified folds in one run, through the Orange objects Test & Score
uses: LogisticRegressionLearner on an Image Embedder table (SqueezeNet at its native
227 px) and ImageClassifierLearner (fine-tuning at --image-size). Then seconds per
epoch of each architecture on 256 images at its native size (random weights for
VGG/Inception, whose weights need not be on this computer), timed on --timing-batches
batches and scaled to 256 images.

Markdown goes to stdout, progress to stderr. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings

import numpy as np


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_digits(root: str) -> list[str]:
    from PIL import Image
    from sklearn.datasets import load_digits
    digits = load_digits()
    paths = []
    for i, (pixels, target) in enumerate(zip(digits.images, digits.target)):
        folder = os.path.join(root, str(target))
        os.makedirs(folder, exist_ok=True)
        image = Image.fromarray((pixels * (255 / 16)).astype(np.uint8))
        path = os.path.join(folder, f"{i:04d}.png")
        image.resize((32, 32), Image.Resampling.BILINEAR).convert("RGB").save(path)
        paths.append(path)
    return paths


def cross_validate(root: str, args) -> list[str]:
    from Orange.classification import LogisticRegressionLearner
    from sklearn.model_selection import StratifiedKFold

    from orangecontrib.deepimage.core import Embedder, find_images
    from orangecontrib.deepimage.data import embeddings_table, image_paths, image_table
    from orangecontrib.deepimage.learner import ImageClassifierLearner

    table = image_table(find_images(root), root=root)
    start = time.perf_counter()
    embedded, _ = embeddings_table(table, Embedder("squeezenet").embed(image_paths(table)))
    embed_seconds = time.perf_counter() - start
    ours = ImageClassifierLearner("squeezenet", mode="fine-tune", image_size=args.image_size,
                                  epochs=args.epochs, head_epochs=args.head_epochs,
                                  patience=args.patience, seed=0, flip=False,
                                  scale_jitter=args.scale_jitter)
    epochs = []
    ours.epoch_callback = epochs.append
    y = embedded.Y.astype(int)
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=0).split(y, y)
    rows = {"logreg": [], "ours": []}
    for fold, (train, test) in enumerate(folds, 1):
        for name, learner in (("logreg", LogisticRegressionLearner()), ("ours", ours)):
            epochs.clear()
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = learner(embedded[train])
            fit_seconds = time.perf_counter() - start
            predicted = model(embedded[test])
            seconds = time.perf_counter() - start
            accuracy = float((predicted == y[test]).mean())
            network = [r.seconds for r in epochs if r.phase == "network"]
            rows[name].append((accuracy, seconds, fit_seconds, list(epochs), network,
                               getattr(model, "best_epoch", None)))
            log(f"fold {fold} {name}: CA {accuracy:.4f}, {seconds:.1f} s"
                + (f", {len(epochs)} epochs, best {model.best_epoch}" if epochs else ""))
    lines = [f"Embedding all {len(table)} images for logistic regression (SqueezeNet, 227 px, "
             f"onnxruntime, no cache hits assumed): {embed_seconds:.1f} s, once for all folds.",
             "",
             "| method | CA per fold | mean CA | s per fold (fit + predict) | epochs run "
             "(head + network) per fold | best epoch | s per network epoch (median) |",
             "|---|---|---:|---|---|---|---:|"]
    names = {"logreg": "Logistic regression on SqueezeNet embeddings (227 px)",
             "ours": f"Fine-tuned SqueezeNet ({args.image_size} px)"}
    for key in ("logreg", "ours"):
        folds_ = rows[key]
        cas = ", ".join(f"{r[0]:.4f}" for r in folds_)
        secs = ", ".join(f"{r[1]:.0f}" for r in folds_)
        if key == "ours":
            runs = ", ".join(f"{sum(e.phase == 'head' for e in r[3])}+"
                             f"{sum(e.phase == 'network' for e in r[3])}" for r in folds_)
            best = ", ".join(str(r[5]) for r in folds_)
            per_epoch = f"{np.median([s for r in folds_ for s in r[4]]):.1f}"
        else:
            runs = best = per_epoch = "-"
        lines.append(f"| {names[key]} | {cas} | {np.mean([r[0] for r in folds_]):.4f} | "
                     f"{secs} | {runs} | {best} | {per_epoch} |")
    return lines


def epoch_timing(args) -> list[str]:
    import dataclasses

    import torch

    from orangecontrib.deepimage.core.models import get_spec
    from orangecontrib.deepimage.core.schedule import network_optimizers
    from orangecontrib.deepimage.core.train import _build_net, preset
    lines = ["", "| network | image size | batch | s per batch (median) | s per epoch of 256 "
                 "images (scaled) |", "|---|---:|---:|---:|---:|"]
    for name in args.architectures:
        spec = get_spec(name)
        config = dataclasses.replace(preset(name, "fine-tune"), random_weights=True,
                                     batch_size=args.timing_batch)
        net = _build_net(config, 10)
        net.train()
        optimizers = network_optimizers(net, config)  # Adam on the last layer, SGD on the rest
        criterion = torch.nn.CrossEntropyLoss()
        size = spec.input_size
        x = torch.randint(0, 255, (config.batch_size, size, size, 3), dtype=torch.uint8)
        target = torch.randint(0, 10, (config.batch_size,))
        times = []
        for _ in range(args.timing_batches + 1):  # the first one warms up
            start = time.perf_counter()
            features = net.preprocess(x)
            backbone = net.backbone
            if hasattr(backbone, "forward_with_aux"):
                logits, aux = backbone.forward_with_aux(features)
            else:
                logits, aux = backbone(features), None
            loss = criterion(logits, target) + (0.4 * criterion(aux, target)
                                                if aux is not None else 0)
            for optimizer in optimizers:
                optimizer.zero_grad()
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()
            times.append(time.perf_counter() - start)
        per_batch = float(np.median(times[1:]))
        per_epoch = per_batch * 256 / config.batch_size
        log(f"{name}: {per_batch:.2f} s per batch of {config.batch_size}")
        lines.append(f"| {spec.display_name} | {size} | {config.batch_size} | "
                     f"{per_batch:.2f} | {per_epoch:.0f} |")
        del net, optimizers
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--scale-jitter", type=float, default=0.0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--architectures", nargs="*",
                        default=["squeezenet", "vgg16", "vgg19", "inception-v3"])
    parser.add_argument("--timing-batch", type=int, default=16)
    parser.add_argument("--timing-batches", type=int, default=2)
    parser.add_argument("--skip-cv", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deepimage-train-bench-") as folder:
        os.environ.setdefault("DEEPIMAGE_CACHE_DIR", os.path.join(folder, "cache"))
        root = os.path.join(folder, "digits")
        write_digits(root)
        import onnxruntime
        import torch
        print(f"Machine: {os.cpu_count()} cores, {platform.machine()} {platform.system()}, "
              f"Python {platform.python_version()}, torch {torch.__version__}, onnxruntime "
              f"{onnxruntime.__version__}; 1-min load average {os.getloadavg()[0]:.1f} before.")
        print(f"\nSettings: fine-tune at {args.image_size} px, up to {args.head_epochs} head "
              f"epochs + {args.epochs} network epochs, patience {args.patience}, no flips, "
              f"scale jitter {args.scale_jitter}, {args.folds} stratified folds (seed 0).\n")
        start = time.perf_counter()
        lines = [] if args.skip_cv else cross_validate(root, args)
        if args.architectures:
            lines += epoch_timing(args)
        print("\n".join(lines))
        print(f"\nWhole run: {time.perf_counter() - start:.0f} s; 1-min load average "
              f"{os.getloadavg()[0]:.1f} after.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
