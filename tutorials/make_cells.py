#!/usr/bin/env python3
"""Write lesson 4's microscope-like cell images (generated, with known masks).

    python tutorials/make_cells.py              # the lesson's 6 images in tutorials/cells
    python tutorials/make_cells.py -o DIR --truth

Two "cultures" of fluorescent cells, three fields of view each, 256 x 256 pixels,
16-bit counts of a 12-bit camera, lit unevenly (one side of each field is dimmer,
the other has a background glow), as microscopes give: culture A's cells are evenly
bright (a nuclear stain), culture B's are rings, bright at the edge and dim inside
(a membrane stain), of the same sizes. The images come from core.segment.synthetic, so they need
no download and are the same on every computer; ``--truth`` also writes each
field's true label image (0 background, 1..N cells) to ``DIR/truth``.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SIDE = 256
#: culture -> whether its cells are rings
CULTURES = {"A": False, "B": True}
RADIUS = (7.0, 11.0)  # pixels
COUNT = 30  # cells per field
FIELDS = 3  # per culture


def cell_fields():
    """(file name, SyntheticImage) for every field of the lesson, always the same."""
    from orangecontrib.deepimage.core.segment.synthetic import SyntheticImage, make_cells
    for c, (culture, rings) in enumerate(CULTURES.items()):
        for field in range(1, FIELDS + 1):
            cells = make_cells((SIDE, SIDE), count=COUNT, radius=RADIUS, touching=0.25,
                               gradient=1.0, seed=100 * c + field)
            if rings:
                cells = SyntheticImage(ringed(cells.image, cells.labels), cells.labels)
            yield f"culture{culture}-{field}.png", cells


def ringed(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The cells of ``image`` dimmed towards their centres: to a fifth at the centre,
    full brightness at the edge."""
    from scipy import ndimage as ndi
    depth = ndi.distance_transform_edt(labels > 0)
    deepest = np.zeros(labels.max() + 1)
    deepest[1:] = ndi.maximum(depth, labels, np.arange(1, labels.max() + 1))
    inner = depth / np.maximum(deepest[labels], 1)  # 0 at the edge, 1 at the centre
    factor = np.where(labels > 0, 1 - 0.8 * np.clip(inner * 1.6 - 0.3, 0, 1), 1)
    return (image * factor).astype(np.uint16)


def write_cells(folder: str, truth: bool = False) -> int:
    """Write the lesson's fields (16-bit PNG) into ``folder``; returns how many."""
    os.makedirs(folder, exist_ok=True)
    written = 0
    for name, cells in cell_fields():
        Image.fromarray(cells.image.astype(np.uint16)).save(os.path.join(folder, name))
        if truth:
            os.makedirs(os.path.join(folder, "truth"), exist_ok=True)
            Image.fromarray(cells.labels.astype(np.uint16)).save(
                os.path.join(folder, "truth", name))
        written += 1
    return written


def true_counts() -> "dict[str, int]":
    """{file name: number of cells in it}."""
    return {name: int(cells.labels.max()) for name, cells in cell_fields()}


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=os.path.join(HERE, "cells"),
                        help="folder to write to (default: tutorials/cells)")
    parser.add_argument("--truth", action="store_true",
                        help="also write the true label images to OUTPUT/truth")
    args = parser.parse_args(argv)
    count = write_cells(args.output, args.truth)
    print(f"Wrote {count} cell images to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
