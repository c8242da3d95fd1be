#!/usr/bin/env python3
"""`deepimage train --nproc N` (DistributedDataParallel) against one process, on digits.

tutorials/digits (50 64-px digits per class): the first --train per class to train on,
the last --test per class held out. The same `deepimage train` options both ways
(default: fine-tune at 48 px, 10 epochs of the last layer, 2 of the whole network,
batch 16, no flips, seed 0): one process (OMP_NUM_THREADS = cores), then N gloo
processes on the CPU (`--nproc N`, OMP_NUM_THREADS = cores / N), or N GPUs with
`--device cuda`. Reports wall clock (start-up included) and held-out accuracy.

    python benchmarks/train_distributed.py                 # 2 processes on the CPU
    python benchmarks/train_distributed.py --nproc 2 --device cuda --image-size 96

Markdown to stdout; see benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIGITS = Path(__file__).resolve().parents[1] / "tutorials" / "digits"


def split(root: Path, train: int, test: int) -> "tuple[Path, Path]":
    for digit in sorted(p.name for p in DIGITS.iterdir() if p.is_dir()):
        files = sorted((DIGITS / digit).glob("*.png"))
        for part, chosen in (("train", files[:train]), ("test", files[-test:])):
            (root / part / digit).mkdir(parents=True, exist_ok=True)
            for path in chosen:
                shutil.copy(path, root / part / digit / path.name)
    return root / "train", root / "test"


def accuracy(model_file: Path, folder: Path) -> float:
    from orangecontrib.deepimage.core.images import find_images
    from orangecontrib.deepimage.data import image_table
    table = image_table(find_images(str(folder)), root=str(folder))
    with open(model_file, "rb") as f:
        model = pickle.load(f)
    return float(np.mean(model(table) == table.Y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train", type=int, default=20, help="training digits per class")
    parser.add_argument("--test", type=int, default=30, help="held-out digits per class")
    parser.add_argument("--image-size", default="48")
    args = parser.parse_args()
    options = ["--image-size", args.image_size, "--epochs", "2", "--head-epochs", "10",
               "--batch-size", "16", "--no-flip", "--seed", "0", "-q", "--device",
               args.device]
    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="deepimage-ddp-bench-") as tmp:
        folder = Path(tmp)
        train, test = split(folder, args.train, args.test)
        env = dict(os.environ, DEEPIMAGE_CACHE_DIR=str(folder / "cache"), DEEPIMAGE_OFFLINE="1")
        load_before = os.getloadavg()[0]
        for label, extra, threads in (
                ("one process", [], cores),
                (f"`--nproc {args.nproc}`", ["--nproc", str(args.nproc)],
                 max(1, cores // args.nproc))):
            out = folder / f"model{len(rows)}.pkcls"
            print(f"{label} ...", file=sys.stderr, flush=True)
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "orangecontrib.deepimage.cli",
                                   "train", str(train), *options, *extra, "-o", str(out)],
                                  env=dict(env, OMP_NUM_THREADS=str(threads)),
                                  capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                sys.exit(proc.stderr)
            rows.append((label, seconds, accuracy(out, test)))
        load_after = os.getloadavg()[0]
    print(f"Machine: {cores} cores, {platform.machine()} {platform.system()}; 1-min load "
          f"average {load_before:.1f} before, {load_after:.1f} after. SqueezeNet fine-tuned "
          f"on {args.train * 10} digits ({args.image_size} px, device {args.device}), "
          f"{args.test * 10} held out.\n")
    print("| run | wall s | held-out accuracy |")
    print("|---|---:|---:|")
    for label, seconds, acc in rows:
        print(f"| {label} | {seconds:.1f} | {acc:.3f} |")
    print(f"\nDifference in held-out accuracy: {rows[1][2] - rows[0][2]:+.3f}.")


if __name__ == "__main__":
    main()
