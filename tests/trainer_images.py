"""Tiny generated image folders for the Trainer tests (training and widget)."""
import os

import numpy as np
from PIL import Image

from orangecontrib.deepimage.core.images import find_images
from orangecontrib.deepimage.data import image_table

COLOURS = {"blue": (40, 60, 190), "red": (190, 50, 40)}


def make_colour_folders(root, per_class=8, noise=60, size=20, seed=0, broken=False,
                        swapped=0):
    """``per_class`` small PNGs per class folder, a class's colour plus uniform noise.
    The last ``swapped`` images of each folder have the other class's colour (mislabelled:
    any classifier gets them wrong). With ``broken``, an unreadable .png in the first
    class. Returns the root as a string."""
    rng = np.random.default_rng(seed)
    colours = list(COLOURS.values())
    for k, label in enumerate(COLOURS):
        os.makedirs(os.path.join(root, label), exist_ok=True)
        for i in range(per_class):
            colour = colours[1 - k] if i >= per_class - swapped else colours[k]
            pixels = np.array(colour)[None, None, :] + rng.integers(-noise, noise + 1,
                                                                    (size, size, 3))
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(
                os.path.join(root, label, f"{label}{i:02d}.png"))
    if broken:
        with open(os.path.join(root, "blue", "broken.png"), "wb") as f:
            f.write(b"\x89PNG not really")
    return str(root)


def colour_table(root, **options):
    """An Import Images-style table (no features, class 'category') of new folders."""
    folder = make_colour_folders(root, **options)
    return image_table(find_images(folder), folder)
