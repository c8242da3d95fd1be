#!/usr/bin/env python3
"""Fine-tuned SqueezeNet against logistic regression on its embeddings, on sklearn's digits.

The 1,797 8x8 digits are written as 32x32 PNGs in one folder per class. Both methods
run on the same stratified folds in one run, through the Orange objects Test & Score
uses: LogisticRegressionLearner on an Image Embedder table (SqueezeNet at its native
227 px) and ImageClassifierLearner (fine-tuning at --image-size). Then seconds per
epoch of each architecture on 256 images at its native size (random weights for
VGG/Inception, whose weights need not be on this computer), timed on --timing-batches
batches and scaled to 256 images.

With --switch, instead: the loss at fine-tuning's switch from the last layer to the
whole network, before and after the fix (a cap on the gradients' norm), side by side on the
tutorial's 500 64-px digits and on crops of the four photos in ../shared/data/photos,
each scored on held-out images.

Markdown goes to stdout, progress to stderr. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
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


# Fine-tuning's second stage before the fix (no cap on the gradients, no label
# smoothing), after it (the preset: SqueezeNet's gradients capped at a norm of 3 at the
# switch, the cap tripling every epoch, and labels smoothed by 0.1), and each part alone
SWITCH_VARIANTS = {"before: no cap": dict(max_grad_norm=0.0, label_smoothing=0.0),
                   "after: the preset (cap 3 x3 per epoch, smoothing 0.1)": {},
                   "the cap alone": dict(label_smoothing=0.0),
                   "smoothing alone": dict(max_grad_norm=0.0)}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# ../shared/data/photos where there is one, else the same four photos in the tutorials
PHOTOS = next(folder for folder in (
    os.path.join(os.path.dirname(REPO), "shared", "data", "photos"),
    os.path.join(REPO, "tutorials", "sample-photos")) if os.path.isdir(folder))


def write_digit_sets(root: str) -> "tuple[str, str]":
    """The tutorial's digits (tutorials/make_digits.py: the first 50 of each, 64 px, dark on
    white) to train on, and all the other 1,297 to score on."""
    sys.path.insert(0, REPO)
    from tutorials.make_digits import write_digits
    everything = os.path.join(root, "all-digits")
    write_digits(everything, per_class=None)
    train, test = os.path.join(root, "digits-train"), os.path.join(root, "digits-test")
    for label in sorted(os.listdir(everything)):
        names = sorted(os.listdir(os.path.join(everything, label)))
        for folder, chosen in ((train, names[:50]), (test, names[50:])):
            os.makedirs(os.path.join(folder, label), exist_ok=True)
            for name in chosen:
                os.replace(os.path.join(everything, label, name),
                           os.path.join(folder, label, name))
    return train, test


def write_photo_sets(root: str, train_per_class: int, test_per_class: int,
                     side: int = 96) -> "tuple[str, str]":
    """Random crops (15-35% of the shorter side, anywhere) of each photo in PHOTOS, the
    photo being the class, written as ``side``-px JPEGs: a train and a test folder."""
    from PIL import Image
    rng = np.random.default_rng(0)
    folders = os.path.join(root, "photos-train"), os.path.join(root, "photos-test")
    for name in sorted(n for n in os.listdir(PHOTOS) if n.endswith(".jpg")):
        label = name.split("-")[0]
        with Image.open(os.path.join(PHOTOS, name)) as photo:
            photo = photo.convert("RGB")
            for folder, count in zip(folders, (train_per_class, test_per_class)):
                os.makedirs(os.path.join(folder, label), exist_ok=True)
                for i in range(count):
                    crop = int(min(photo.size) * rng.uniform(0.15, 0.35))
                    x = int(rng.integers(0, photo.size[0] - crop))
                    y = int(rng.integers(0, photo.size[1] - crop))
                    photo.crop((x, y, x + crop, y + crop)).resize((side, side)).save(
                        os.path.join(folder, label, f"{label}-{i:03d}.jpg"), quality=90)
    return folders


def _switch_run(train: str, test: str, image_size: int, overrides: dict, args):
    import dataclasses

    from orangecontrib.deepimage.core import find_images
    from orangecontrib.deepimage.core.train import predict_proba, preset, train_classifier

    def labelled(folder):
        paths = find_images(folder)
        classes = sorted({os.path.basename(os.path.dirname(p)) for p in paths})
        return paths, [classes.index(os.path.basename(os.path.dirname(p))) for p in paths], \
            len(classes)

    paths, labels, n = labelled(train)
    config = dataclasses.replace(preset("squeezenet", "fine-tune"), image_size=image_size,
                                 head_epochs=args.head_epochs, epochs=args.switch_epochs,
                                 patience=args.patience,
                                 **{"seed": 0, "flip": False, **overrides})
    start = time.perf_counter()
    result = train_classifier(paths, labels, n, config)
    seconds = time.perf_counter() - start
    test_paths, test_labels, _ = labelled(test)
    probs, rows, _ = predict_proba(result.net, test_paths, result.image_size)
    accuracy = float((probs.argmax(1) == np.asarray(test_labels)[rows]).mean())
    return result, accuracy, seconds


def highest_rise(history, measure: str) -> float:
    """The highest validation ``measure`` of any whole-network epoch over the last layer's
    best, less 1 (+0.10: 10% above it)."""
    head = [getattr(r, measure) for r in history if r.phase == "head"]
    network = [getattr(r, measure) for r in history if r.phase == "network"]
    return max(network) / min(head) - 1


def switch_benchmark(root: str, args) -> list[str]:
    """Validation loss at the switch to the whole network, before and after the fix: a row
    per run, then a summary per images and variant over the seeds."""
    sets = []
    if args.switch_sets in ("both", "digits"):
        sets.append((f"tutorial digits (500, {args.digit_size} px)", *write_digit_sets(root),
                     args.digit_size))
    if args.switch_sets in ("both", "photos"):
        sets.append(("photo crops (4 photos x 40, 96 px)",
                     *write_photo_sets(root, 40, args.test_per_class), 96))
    variants = json.loads(args.variants) if args.variants else SWITCH_VARIANTS
    variants = list(variants.items())[:args.switch_variants]
    lines = ["| images | variant | seed | val loss: best head epoch | network epochs | "
             "highest over the head's best | the same in cross-entropy | best epoch | "
             "held-out CA | s |", "|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    summary = ["| images | variant | seeds | highest rise | seeds over +10% | "
               "highest rise in cross-entropy | seeds over +10% | mean held-out CA |",
               "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, train, test, size in sets:
        for variant, overrides in variants:
            rises, nll_rises, accuracies = [], [], []
            for seed in args.seeds:
                run = {"seed": seed, "flip": args.flip, **overrides}
                result, accuracy, seconds = _switch_run(train, test, size, run, args)
                network = [r.val_loss for r in result.history if r.phase == "network"]
                best_head = min(r.val_loss for r in result.history if r.phase == "head")
                rise = highest_rise(result.history, "val_loss")
                # the loss without label smoothing (the same where there is none)
                nll_rise = highest_rise(result.history, "val_nll")
                rises.append(rise)
                nll_rises.append(nll_rise)
                accuracies.append(accuracy)
                curve = ", ".join(f"{v:.3f}" for v in network)
                log(f"{name}, {variant}, seed {seed}: head {best_head:.3f}, network {curve}, "
                    f"highest {100 * rise:+.0f}% (cross-entropy {100 * nll_rise:+.0f}%), "
                    f"CA {accuracy:.4f}, {seconds:.0f} s")
                lines.append(f"| {name} | {variant} | {seed} | {best_head:.3f} | {curve} | "
                             f"{100 * rise:+.0f}% | {100 * nll_rise:+.0f}% | "
                             f"{result.best_epoch} | {accuracy:.4f} | {seconds:.0f} |")
            summary.append(f"| {name} | {variant} | {len(rises)} | {100 * max(rises):+.0f}% | "
                           f"{sum(r > 0.10 for r in rises)} | {100 * max(nll_rises):+.0f}% | "
                           f"{sum(r > 0.10 for r in nll_rises)} | {np.mean(accuracies):.4f} |")
    return summary + [""] + lines


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
    parser.add_argument("--patience", type=int,
                        help="4; with --switch the preset's 3")
    parser.add_argument("--scale-jitter", type=float, default=0.0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--architectures", nargs="*",
                        default=["squeezenet", "vgg16", "vgg19", "inception-v3"])
    parser.add_argument("--timing-batch", type=int, default=16)
    parser.add_argument("--timing-batches", type=int, default=2)
    parser.add_argument("--skip-cv", action="store_true")
    parser.add_argument("--switch", action="store_true",
                        help="only the loss at fine-tuning's switch, before and after")
    parser.add_argument("--switch-epochs", type=int, default=10,
                        help="--switch: network epochs after the last layer's")
    parser.add_argument("--switch-sets", choices=("both", "digits", "photos"),
                        default="both")
    parser.add_argument("--switch-variants", type=int, default=len(SWITCH_VARIANTS),
                        help="--switch: the first N of before, after, a lower rate")
    parser.add_argument("--variants", metavar="JSON",
                        help='--switch: other variants, {"name": {TrainConfig field: value}}')
    parser.add_argument("--test-per-class", type=int, default=25,
                        help="--switch: held-out photo crops per photo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="--switch: a run per seed (split, batches, last layer's start)")
    parser.add_argument("--flip", action="store_true",
                        help="--switch: random flips on (the Trainer's default; off in lesson 2)")
    parser.add_argument("--digit-size", type=int, default=64,
                        help="--switch: the digits' training size (the lesson's 64 px; the "
                             "Trainer chooses 96 for them)")
    args = parser.parse_args()
    if args.patience is None:
        args.patience = 3 if args.switch else 4
    with tempfile.TemporaryDirectory(prefix="deepimage-train-bench-") as folder:
        os.environ.setdefault("DEEPIMAGE_CACHE_DIR", os.path.join(folder, "cache"))
        if args.switch:
            import torch
            print(f"Machine: {os.cpu_count()} cores, torch {torch.__version__}; 1-min load "
                  f"average {os.getloadavg()[0]:.1f} before.\n")
            print(f"Fine-tuning SqueezeNet: up to {args.head_epochs} epochs of the last layer, "
                  f"then up to {args.switch_epochs} of the whole network, patience "
                  f"{args.patience}, flips {'on' if args.flip else 'off'}, seeds "
                  f"{', '.join(map(str, args.seeds))}; held-out CA on the other 1,297 digits "
                  f"and on {args.test_per_class} other crops of each photo.\n")
            start = time.perf_counter()
            print("\n".join(switch_benchmark(folder, args)))
            print(f"\nWhole run: {time.perf_counter() - start:.0f} s; 1-min load average "
                  f"{os.getloadavg()[0]:.1f} after.")
            return 0
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
