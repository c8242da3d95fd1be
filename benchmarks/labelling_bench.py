#!/usr/bin/env python3
"""Label as you go: suggest_next against labelling at random, label_issues, speed.

Simulated labelling with an oracle (it answers with the true class), from zero labels,
`--batch` suggestions per round, on two image sets embedded with the project's
SqueezeNet (`core.embed_images` on PNG files written to a temporary folder; the
vectors are cached in benchmarks/results/, which git ignores):

- digits: scikit-learn's 1,797 handwritten digits, scaled to 64x64, dark on white
  (as tutorials/make_digits.py writes them); 10 classes.
- patches: random square crops (15-40% of the shorter side, resized to 96x96, flipped
  at random) of 16 pictures that scikit-image ships (astronaut, brick, camera, ...);
  100 crops per picture, the class is the picture; 1,600 images in 16 classes.

Reported, mean (and std) over `--seeds` seeds: accuracy of the quick model on the rows
not labelled after 50 and 100 labels, per strategy; label_issues with 5% of the labels
flipped to another class at random (all rows labelled): precision among its top 5%
(and recall); the seconds of one suggest_next call on 20,000 synthetic 1000-d rows
with 200 labels. Markdown to stdout, progress to stderr. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, os.path.dirname(HERE))

from orangecontrib.deepimage.labelling import (estimate_accuracy, fit_quick_model,  # noqa
                                               label_issues, suggest_next)

PICTURES = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
            "hubble_deep_field", "ihc", "moon", "retina", "rocket", "motorcycle_left",
            "page", "text")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def digits_images():
    """(uint8 grey images, classes) of the 1,797 digits at 64x64, ink dark."""
    from PIL import Image
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = [Image.fromarray((255 - p * (255 / 16)).clip(0, 255).astype(np.uint8), "L")
              .resize((64, 64), Image.Resampling.BICUBIC) for p in digits.images]
    return images, digits.target.astype(int)


def patches_images(per_class: int = 100, seed: int = 0):
    """Random crops of scikit-image's sample pictures; the class is the picture."""
    import skimage.data
    from PIL import Image
    folder = os.path.dirname(skimage.data.__file__)
    files = {name: next(f for f in os.listdir(folder) if f.startswith(name + "."))
             for name in PICTURES}
    rng = np.random.default_rng(seed)
    images, classes = [], []
    for label, name in enumerate(PICTURES):
        picture = Image.open(os.path.join(folder, files[name])).convert("RGB")
        width, height = picture.size
        for _ in range(per_class):
            side = int(min(width, height) * rng.uniform(0.15, 0.40))
            x, y = rng.integers(0, width - side + 1), rng.integers(0, height - side + 1)
            crop = picture.crop((x, y, x + side, y + side)).resize((96, 96))
            if rng.random() < 0.5:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            images.append(crop)
            classes.append(label)
    return images, np.array(classes)


SETS = {"digits": digits_images, "patches": patches_images}


def embedded(name: str) -> tuple:
    """(embeddings, classes) of a set, embedded once and cached in benchmarks/results."""
    cache = os.path.join(RESULTS, f"labelling-{name}-squeezenet.npz")
    if os.path.exists(cache):
        data = np.load(cache)
        return data["X"], data["y"]
    from orangecontrib.deepimage.core import embed_images
    images, classes = SETS[name]()
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i, image in enumerate(images):
            paths.append(os.path.join(folder, f"{name}-{i:05}.png"))
            image.save(paths[-1])
        log(f"embedding {len(paths)} {name} images with SqueezeNet ...")
        start = time.perf_counter()
        result = embed_images(paths, "squeezenet", cache=False)
        log(f"  {time.perf_counter() - start:.0f} s, {len(result.skipped)} skipped")
    X = result.full()
    os.makedirs(RESULTS, exist_ok=True)
    np.savez_compressed(cache, X=X, y=classes)
    return X, classes


def simulate(X, y, strategy: str, seed: int, budgets=(50, 100), batch: int = 10,
             estimates: bool = False) -> dict:
    """Accuracy on the unlabelled rows at each budget, labelling `batch` at a time;
    with `estimates`, also {("estimate", budget): (before, new estimate, low, high)}."""
    labels = [None] * len(y)
    accuracy, step = {}, 0
    while sum(isinstance(k, int) for k in accuracy) < len(budgets):
        done = sum(label is not None for label in labels)
        if done in budgets:
            model = fit_quick_model(X, labels)
            rest = np.array([label is None for label in labels])
            predicted = np.array(model.predict(X[rest]))
            accuracy[done] = float(np.mean(predicted == y[rest]))
            if estimates:
                new = estimate_accuracy(X, labels, seed=seed)
                accuracy["estimate", done] = (plain_cv(X, labels, seed), new.mean, new.low,
                                              new.high, new.cross_validated)
            if sum(isinstance(k, int) for k in accuracy) == len(budgets):
                break
        n = min(batch, max(b for b in budgets) - done)
        n = min(n, min(b for b in budgets if b > done) - done)
        for i in suggest_next(X, labels, n, strategy, seed=seed * 1000 + step):
            labels[i] = int(y[i])
        step += 1
    return accuracy


def plain_cv(X, labels, seed: int):
    """The estimate before 2026-12-07 (for the comparison): stratified k-fold (k up to
    5) over the classes with two or more labels, the mean of the folds' accuracies;
    None where it could not be computed."""
    from orangecontrib.deepimage.core.labelling.inputs import prepare
    from orangecontrib.deepimage.core.labelling.quickmodel import out_of_fold_proba
    prepared = prepare(X, labels)
    oof = out_of_fold_proba(prepared, seed, min_testable=2)
    if not oof.n_folds:
        return None
    correct = np.argmax(np.nan_to_num(oof.proba, nan=-1.0), axis=1) == prepared.y[oof.rows]
    return float(np.mean([correct[oof.fold == k].mean() for k in range(oof.n_folds)]))


def estimate_table(args: argparse.Namespace) -> None:
    """Estimate against the true accuracy on the unlabelled rows, labelling with auto."""
    budgets = (10, 20, 30, 50, 100)
    print("\n| set | labels | true accuracy | before: plain CV | bias before | "
          "now: estimate (95 % interval) | bias now | true inside the interval | "
          "no estimate |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.sets:
        X, y = embedded(name)
        runs = [simulate(X, y, "auto", seed, budgets, args.batch, estimates=True)
                for seed in range(args.seeds)]
        for b in budgets:
            true = np.array([r[b] for r in runs])
            old = np.array([np.nan if r["estimate", b][0] is None else r["estimate", b][0]
                            for r in runs])
            new = [r["estimate", b][1:] for r in runs]
            cv = np.array([np.nan if e[3] is None else e[3] for e in new])
            print(f"<!-- k-fold over every label: {np.nanmean(cv):.3f}, "
                  f"bias {np.nanmean(cv - true) * 100:+.1f} -->")
            ok = [e[0] is not None for e in new]
            mean = np.array([e[0] if e[0] is not None else np.nan for e in new])
            inside = [e[1] <= t <= e[2] for e, t, k in zip(new, true, ok) if k]
            low = np.mean([e[1] for e, k in zip(new, ok) if k]) if any(ok) else np.nan
            high = np.mean([e[2] for e, k in zip(new, ok) if k]) if any(ok) else np.nan
            print(f"| {name} | {b} | {true.mean():.3f} | {np.nanmean(old):.3f} | "
                  f"{np.nanmean(old - true) * 100:+.1f} | {np.nanmean(mean):.3f} "
                  f"({low:.2f}-{high:.2f}) | {np.nanmean(mean - true) * 100:+.1f} | "
                  f"{sum(inside)} of {sum(ok)} | {len(ok) - sum(ok)} of {len(ok)} |",
                  flush=True)


def issues_precision(X, y, seed: int, rate: float = 0.05) -> tuple:
    """(precision among the top rate*n, recall) of label_issues with rate flipped."""
    rng = np.random.default_rng(seed)
    n_flip = int(round(rate * len(y)))
    flipped = rng.choice(len(y), n_flip, replace=False)
    noisy = y.copy()
    classes = np.unique(y)
    for i in flipped:
        noisy[i] = rng.choice(classes[classes != y[i]])
    found = label_issues(X, [int(v) for v in noisy], seed=seed)[:n_flip]
    hits = len(set(found) & set(flipped.tolist()))
    return hits / max(len(found), 1), hits / n_flip, len(found)


def speed(repeats: int = 3) -> dict:
    """Seconds of suggest_next on 20,000 x 1000 synthetic rows with 200 labels."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 1000))
    which = rng.integers(0, 20, 20000)
    X = (centres[which] + rng.normal(scale=2.0, size=(20000, 1000))).astype(np.float32)
    labels = [None] * len(X)
    for i in rng.choice(len(X), 200, replace=False):
        labels[i] = int(which[i] % 10)
    times = {}
    for strategy in ("auto", "diverse", "random"):
        runs = []
        for r in range(repeats):
            start = time.perf_counter()
            picks = suggest_next(X, labels, 10, strategy, seed=r)
            runs.append(time.perf_counter() - start)
            assert len(picks) == 10
        times[strategy] = runs
    return times


def mean_std(values) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--strategies", nargs="+", default=["auto", "random"])
    parser.add_argument("--skip-simulation", action="store_true")
    parser.add_argument("--skip-issues", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--estimates", action="store_true",
                        help="the accuracy estimate against the true accuracy, with auto")
    args = parser.parse_args(argv)
    import sklearn
    print(f"Machine: {os.cpu_count()} cores (shared), {platform.machine()} "
          f"{platform.system()}, Python {platform.python_version()}, numpy "
          f"{np.__version__}, scikit-learn {sklearn.__version__}; {args.seeds} seeds, "
          f"batches of {args.batch}.\n")
    load = os.getloadavg()[0]
    print(f"1-min load average {load:.1f} at the start.\n")
    if not args.skip_simulation:
        simulations(args)
    if args.estimates:
        estimate_table(args)
    if not args.skip_issues:
        print("\n| set | label_issues precision in top 5% | recall | returned |")
        print("|---|---|---|---|")
        for name in args.sets:
            X, y = embedded(name)
            runs = [issues_precision(X, y, seed) for seed in range(args.seeds)]
            print(f"| {name} | {mean_std([r[0] for r in runs])} | "
                  f"{mean_std([r[1] for r in runs])} | {np.mean([r[2] for r in runs]):.0f} |",
                  flush=True)
    if not args.skip_speed:
        times = speed()
        print("\n| suggest_next, 20,000 x 1000 rows, 200 labels, n=10 | median s | max s |")
        print("|---|---|---|")
        for strategy, runs in times.items():
            print(f"| {strategy} | {np.median(runs):.2f} | {np.max(runs):.2f} |")
    print(f"\n1-min load average {os.getloadavg()[0]:.1f} at the end.")
    return 0


def simulations(args: argparse.Namespace) -> None:
    """The table of accuracies after 50 and 100 labels, per set and strategy."""
    print("| set | strategy | accuracy after 50 | accuracy after 100 | seconds |")
    print("|---|---|---|---|---|")
    results = {}
    for name in args.sets:
        X, y = embedded(name)
        for strategy in args.strategies:
            start = time.perf_counter()
            runs = [simulate(X, y, strategy, seed, batch=args.batch)
                    for seed in range(args.seeds)]
            seconds = time.perf_counter() - start
            results[name, strategy] = runs
            print(f"| {name} | {strategy} | {mean_std([r[50] for r in runs])} | "
                  f"{mean_std([r[100] for r in runs])} | {seconds:.0f} |", flush=True)
        if "random" in args.strategies:
            for strategy in args.strategies:
                if strategy != "random":
                    gains = [np.mean([r[b] for r in results[name, strategy]])
                             - np.mean([r[b] for r in results[name, "random"]])
                             for b in (50, 100)]
                    print(f"| {name} | {strategy} − random | {gains[0] * 100:+.1f} points | "
                          f"{gains[1] * 100:+.1f} points | |")


if __name__ == "__main__":
    sys.exit(main())
