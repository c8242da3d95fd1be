"""Real digit images in class folders, with embeddings from their own pixels, for the
labelling tests (fast: no network; the embedding test uses SqueezeNet separately)."""
import os

import numpy as np
from Orange.data import ContinuousVariable, Domain, Table
from PIL import Image

from orangecontrib.deepimage.core.images import find_images
from orangecontrib.deepimage.data import image_paths, image_table
from orangecontrib.deepimage.tutorials.make_digits import write_digits


def digit_folder(folder, per_class=6) -> str:
    """``per_class`` PNGs of each digit in ``folder``/0..9 (scikit-learn's digits)."""
    write_digits(str(folder), per_class=per_class)
    return str(folder)


def pixel_embeddings(paths) -> np.ndarray:
    """Each image as 64 numbers: its pixels averaged to 8 x 8 (digits are told apart by
    them about as well as by a network's embedding)."""
    rows = []
    for path in paths:
        with Image.open(path) as image:
            rows.append(np.asarray(image.convert("L").resize((8, 8)), float).ravel() / 255)
    return np.array(rows)


def embedded_table(folder, drop_class=True) -> Table:
    """Import Images' table of ``folder`` with n0..n63 features, as Image Embedder adds
    them (the folders' class dropped unless ``drop_class`` is False)."""
    table = image_table(find_images(str(folder)), str(folder))
    X = pixel_embeddings(image_paths(table))
    features = [ContinuousVariable(f"n{i}") for i in range(X.shape[1])]
    domain = Domain(features, None if drop_class else table.domain.class_var,
                    table.domain.metas)
    out = table.transform(domain)
    with out.unlocked(out.X):
        out.X = X
    return out


def true_classes(table: Table) -> list:
    """The digit of each row, from its folder (the oracle of the simulated labelling)."""
    return [os.path.basename(os.path.dirname(p)) for p in image_paths(table)]
