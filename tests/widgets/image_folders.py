"""Tiny generated image folders for the Import Images and Image Viewer tests."""
import os

import numpy as np
from PIL import Image


def make_class_folders(root, per_class=3, classes=("cats", "dogs"), size=(24, 16)):
    """``per_class`` small JPEGs in each class folder, plus three odd files:
    an empty JPEG, a text file named .png, and a README.txt. Returns the root."""
    rng = np.random.default_rng(0)
    for name in classes:
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(os.path.join(root, name, f"{name}{i}.jpg"))
    open(os.path.join(root, classes[0], "empty.jpg"), "wb").close()
    with open(os.path.join(root, classes[-1], "notes.png"), "w") as f:
        f.write("not an image")
    with open(os.path.join(root, "README.txt"), "w") as f:
        f.write("photos of pets")
    os.makedirs(os.path.join(root, ".thumbnails"), exist_ok=True)  # hidden: ignored
    Image.new("RGB", (4, 4)).save(os.path.join(root, ".thumbnails", "x.png"))
    return str(root)
