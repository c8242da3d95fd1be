#!/usr/bin/env python3
"""Write scikit-learn's handwritten digits as PNG files in class folders, for the tutorials.

    python tutorials/make_digits.py            # 50 images of each digit in tutorials/digits
    python tutorials/make_digits.py --all      # all 1,797 images
    python tutorials/make_digits.py -o DIR -n 20

The 8x8 scans (16 grey levels) are scaled up to 64x64 and drawn dark on white, as
on paper, so that they look like digits in Image Viewer. Folders are named 0..9:
Import Images makes them the class. The images need no download (they ship with
scikit-learn), so the tutorial works offline.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = 64
PER_CLASS = 50  # what the lessons' notes, workflows and measured numbers expect


def write_digits(folder: str, per_class: "int | None" = PER_CLASS) -> int:
    """Write the digits (``per_class`` of each, or all when None) to ``folder``/<digit>/."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    counts = dict.fromkeys(range(10), 0)
    written = 0
    for index, (pixels, label) in enumerate(zip(digits.images, digits.target)):
        label = int(label)
        if per_class is not None and counts[label] >= per_class:
            continue
        counts[label] += 1
        grey = (255 - pixels * (255 / 16)).clip(0, 255).astype(np.uint8)  # ink is dark
        image = Image.fromarray(grey, "L").resize((SIZE, SIZE), Image.Resampling.BICUBIC)
        target = os.path.join(folder, str(label))
        os.makedirs(target, exist_ok=True)
        image.save(os.path.join(target, f"digit-{index:04}.png"))
        written += 1
    return written


def _same_path(a: str, b: str) -> bool:
    """Whether two paths name the same place; works for paths that do not exist yet."""
    def normal(path: str) -> str:
        return os.path.normcase(os.path.realpath(os.path.abspath(os.path.expanduser(path))))
    return normal(a) == normal(b)


def ensure_digits(folder: str) -> str:
    """``folder``, after writing the digits (50 of each) there if it is the lessons'
    digits folder and missing.

    Any other folder must already exist: a mistyped ``--data`` is an error, never a
    new folder of digits. An existing folder is left as it is; taking fewer images of
    each class is Import Images' job (lesson_steps.import_images), so the lessons'
    folder always gets all 50 and every later lesson and workflow sees the same 500.
    """
    if os.path.isdir(folder):
        return folder
    from orangecontrib.deepimage import tutorials  # read now: tests point it elsewhere
    if not _same_path(folder, tutorials.DIGITS_DIR):
        raise SystemExit(f"Folder {folder} was not found: give a folder with one "
                         "subfolder of images per class.")
    print(f"Writing the lessons' digits ({PER_CLASS} of each) to {folder} (once) ...",
          flush=True)
    write_digits(folder, PER_CLASS)
    return folder


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", default=os.path.join(HERE, "digits"),
                        help="folder to write to (default: tutorials/digits)")
    parser.add_argument("-n", "--per-class", type=int, default=PER_CLASS,
                        help=f"images of each digit (default {PER_CLASS})")
    parser.add_argument("--all", action="store_true", help="write all 1,797 images")
    args = parser.parse_args(argv)
    written = write_digits(args.output, None if args.all else args.per_class)
    print(f"Wrote {written} images to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
