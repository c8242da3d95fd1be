"""Tiny image sets for training tests: separable colour classes, written as class folders."""
import numpy as np
import pytest
from PIL import Image


def write_colour_set(root, per_class: int = 16, size: int = 40, seed: int = 0,
                     classes=("blue", "red")):
    """Noisy reddish and bluish squares with a random bright blob: easy, not trivial."""
    rng = np.random.default_rng(seed)
    base = {"red": (200, 40, 40), "blue": (40, 60, 200), "green": (40, 190, 60)}
    paths = []
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.normal(base[name], 45, (size, size, 3))
            y, x = rng.integers(0, size - 10, 2)
            pixels[y:y + 10, x:x + 10] = 255
            path = root / name / f"{name}{i:02d}.png"
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path)
            paths.append(str(path))
    return paths


@pytest.fixture(scope="session")
def colour_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    write_colour_set(root)
    return root


@pytest.fixture(scope="session")
def colour_table(colour_dir):
    from orangecontrib.deepimage.core.images import find_images
    from orangecontrib.deepimage.data import image_table
    return image_table(find_images(colour_dir), root=str(colour_dir))


@pytest.fixture
def write_colours():
    """The writer itself, for tests that need a set of their own."""
    return write_colour_set
