#!/usr/bin/env python3
"""The fine-tuning recipe against logistic regression on the network's embeddings, on
three kinds of images, 3-fold CV (issue 20).

Sets (written to a temporary folder): scikit-learn's 1,797 digits at 32 px (as
train_digits.py writes them); 600 drawn shapes, 10 classes at 56 px (``write_shapes``:
polygons, stars, a circle, a cross and an arrow, randomly rotated, scaled, placed and
coloured on noisy backgrounds); 400 photo patches, 10 classes at 48 px (``write_patches``:
random crops of ten pictures scikit-image ships, the picture being the class; kept aside:
the defaults were chosen on the digits and the shapes).

Per fold, on the same stratified folds: Orange's LogisticRegressionLearner on the Image
Embedder table (SqueezeNet at its native 227 px, embedded once), and
ImageClassifierLearner at the defaults (or a variant) scored with and without test-time
augmentation (the same model, predicted twice). Wall and process CPU seconds per fold.
Markdown on stdout, progress on stderr.

    OMP_NUM_THREADS=1 python benchmarks/train_recipe.py --sets digits shapes
    python benchmarks/train_recipe.py --sets shapes --variant '{"crop_scale": 1, "shift": 0}'
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _polygon(sides: int, star: bool = False) -> np.ndarray:
    """Unit-radius vertices of a regular polygon or star, as (x, y) rows."""
    count = sides * 2 if star else sides
    angles = np.arange(count) * 2 * np.pi / count
    radii = np.where(np.arange(count) % 2, 0.45, 1.0) if star else np.ones(count)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)


SHAPES = {
    "triangle": _polygon(3), "square": _polygon(4), "pentagon": _polygon(5),
    "hexagon": _polygon(6), "circle": _polygon(40), "star4": _polygon(4, True),
    "star5": _polygon(5, True), "star8": _polygon(8, True),
    "cross": np.array([[-1, -.3], [-.3, -.3], [-.3, -1], [.3, -1], [.3, -.3], [1, -.3],
                       [1, .3], [.3, .3], [.3, 1], [-.3, 1], [-.3, .3], [-1, .3]]),
    "arrow": np.array([[-1, -.25], [.2, -.25], [.2, -.6], [1, 0], [.2, .6], [.2, .25],
                       [-1, .25]]),
}


def write_shapes(root: str, per_class: int = 60, side: int = 56, seed: int = 0) -> str:
    """Drawn shapes, one folder per class: random rotation, size (35-90% of the side),
    position, fill and background, with pixel noise."""
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(seed)
    for name, vertices in SHAPES.items():
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            angle = rng.uniform(0, 2 * np.pi)
            rotation = np.array([[np.cos(angle), -np.sin(angle)],
                                 [np.sin(angle), np.cos(angle)]])
            radius = rng.uniform(0.18, 0.45) * side
            centre = rng.uniform(radius, side - radius, 2)
            points = vertices @ rotation.T * radius + centre
            background = tuple(int(v) for v in rng.integers(0, 256, 3))
            fill = tuple(int(v) for v in (np.array(background) + rng.integers(80, 176, 3)) % 256)
            image = Image.new("RGB", (side, side), background)
            ImageDraw.Draw(image).polygon([tuple(p) for p in points], fill=fill)
            pixels = np.asarray(image, float) + rng.normal(0, 18, (side, side, 3))
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(
                os.path.join(root, name, f"{name}-{i:03d}.png"))
    return root


PICTURES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
            "immunohistochemistry", "retina", "brick", "grass", "gravel")


def write_patches(root: str, per_class: int = 40, side: int = 48, seed: int = 0) -> str:
    """Random crops (15-35% of the shorter side) of ten scikit-image pictures, resized to
    ``side``; the picture is the class."""
    import skimage.data
    from PIL import Image
    rng = np.random.default_rng(seed)
    for name in PICTURES:
        picture = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            crop = int(min(picture.size) * rng.uniform(0.15, 0.35))
            x = int(rng.integers(0, picture.size[0] - crop))
            y = int(rng.integers(0, picture.size[1] - crop))
            picture.crop((x, y, x + crop, y + crop)).resize((side, side)).save(
                os.path.join(root, name, f"{name}-{i:03d}.jpg"), quality=90)
    return root


SETS = ("digits", "shapes", "patches", "shapes32", "patches32", "shapes64")


def write_set(name: str, root: str) -> str:
    """One of ``SETS``; "shapes32" and "patches32" are the shapes and the patches drawn
    at 32 px (another seed): small images other than the digits; "shapes64" 1,800 shapes
    at 64 px (a third seed): 1,200 training images a fold at the top of the 32-64 px
    range the time target is about."""
    from train_digits import write_digits
    folder = os.path.join(root, name)
    if name == "digits":
        write_digits(folder)
        return folder
    writer = write_shapes if name.startswith("shapes") else write_patches
    if name.endswith("32"):
        return writer(folder, side=32, seed=1)
    if name == "shapes64":
        return writer(folder, per_class=180, side=64, seed=2)
    return writer(folder)


def _fit_predict(learner, train, test):
    start, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = learner(train)
    fit = (time.perf_counter() - start, time.process_time() - cpu)
    return model, fit


def cross_validate(folder: str, variant: dict, folds: int, max_folds: int,
                   only: "int | None" = None):
    from Orange.classification import LogisticRegressionLearner
    from sklearn.model_selection import StratifiedKFold

    from orangecontrib.deepimage.core import Embedder, find_images
    from orangecontrib.deepimage.data import embeddings_table, image_paths, image_table
    from orangecontrib.deepimage.learner import ImageClassifierLearner
    table = image_table(find_images(folder), root=folder)
    embedded, _ = embeddings_table(table, Embedder("squeezenet").embed(image_paths(table)))
    y = embedded.Y.astype(int)
    rows = []
    splits = StratifiedKFold(folds, shuffle=True, random_state=0).split(y, y)
    for fold, (train, test) in enumerate(splits, 1):
        if fold > max_folds:
            break
        if only is not None and fold != only:
            continue
        logreg, _ = _fit_predict(LogisticRegressionLearner(), embedded[train], None)
        lr_ca = float((logreg(embedded[test]) == y[test]).mean())
        ours = ImageClassifierLearner("squeezenet", **variant)
        model, (wall, cpu) = _fit_predict(ours, embedded[train], None)
        scores = {}
        for views in (1, 5):
            model.tta = views
            start = time.perf_counter()
            scores[views] = float((model(embedded[test]) == y[test]).mean())
            scores[f"s{views}"] = time.perf_counter() - start
        network = [r for r in model.history if r.phase == "network"]
        rows.append(dict(fold=fold, lr=lr_ca, ft=scores[1], tta=scores[5], wall=wall, cpu=cpu,
                         n_train=len(train), size=model.image_size, epochs=len(network),
                         best=model.best_epoch, baseline=model.baseline_accuracy,
                         val=model.best.val_accuracy if model.best else math.nan,
                         predict=scores["s5"]))
        log(f"{os.path.basename(folder)} {variant} fold {fold}: {rows[-1]}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", default=["digits", "shapes", "patches"],
                        choices=SETS)
    parser.add_argument("--variant", default="{}", metavar="JSON",
                        help="ImageClassifierLearner options over the defaults")
    parser.add_argument("--name", default="defaults")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--max-folds", type=int, default=3, help="run only the first N")
    parser.add_argument("--fold", type=int, default=None,
                        help="run only fold K (processes side by side; share the embedding "
                             "cache with DEEPIMAGE_CACHE_DIR)")
    args = parser.parse_args()
    variant = json.loads(args.variant)
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); 1-min load "
          f"average {os.getloadavg()[0]:.1f} before.\n")
    print("| set | recipe | fold | train images | px | LR on embeddings (227 px) | fine-tuned "
          "| + TTA | network epochs (best epoch) | val: fine-tuned / LR | fit wall s | "
          "fit CPU s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="deepimage-recipe-") as root:
        os.environ.setdefault("DEEPIMAGE_CACHE_DIR", os.path.join(root, "cache"))
        for name in args.sets:
            for r in cross_validate(write_set(name, root), variant, args.folds,
                                    args.max_folds, args.fold):
                print(f"| {name} | {args.name} | {r['fold']} | {r['n_train']} | {r['size']} | "
                      f"{r['lr']:.4f} | {r['ft']:.4f} | {r['tta']:.4f} | {r['epochs']} "
                      f"({r['best']}) | {r['val']:.3f} / {r['baseline']:.3f} | "
                      f"{r['wall']:.0f} | {r['cpu']:.0f} |", flush=True)
    print(f"\n1-min load average {os.getloadavg()[0]:.1f} after.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
