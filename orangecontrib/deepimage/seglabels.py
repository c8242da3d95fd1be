"""Painted labels kept with a workflow, and labels read from a folder. No Qt.

Segment Images stores the scribbles a user painted, per image, in a Setting: a
label image (0 unlabelled, 1 background, 2.. the kinds of object, as ilastik
exports them) encoded as a PNG and then base64. Scribbles are mostly zeros, so a
1024 x 1024 image with a few strokes takes a few hundred bytes.

A folder of label images or object masks (0 background, 1..N objects, as
CellProfiler, Cellpose and QuPath write them) is matched to the images by name.
"""
from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass, field
from typing import Mapping, Optional

import numpy as np
from PIL import Image

__all__ = ["UNLABELLED", "BACKGROUND", "encode_labels", "decode_labels", "masks_to_labels",
           "image_shapes",
           "LoadedLabels", "labels_from_folder", "LABELS", "MASKS", "MAX_LABEL"]

UNLABELLED, BACKGROUND = 0, 1
MAX_LABEL = 9  # background and up to 8 kinds of object: the editor's colours
LABELS, MASKS = "labels", "masks"  # what a folder holds
_SUFFIXES = (".png", ".tif", ".tiff")


def encode_labels(labels: np.ndarray) -> str:
    """A label image (values 0..255) as base64 text of a PNG."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.size == 0:
        raise ValueError("labels must be a 2-d array")
    if labels.min() < 0 or labels.max() > 255:
        raise ValueError("labels must lie in 0..255")
    buffer = io.BytesIO()
    Image.fromarray(labels.astype(np.uint8), mode="L").save(buffer, "PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_labels(text: str) -> np.ndarray:
    """The uint8 label image ``encode_labels`` wrote."""
    with Image.open(io.BytesIO(base64.b64decode(text))) as image:
        return np.array(image.convert("L"), dtype=np.uint8)


def image_shapes(images: "dict[str, str]") -> "dict[str, tuple[int, int]]":
    """(height, width) of each image (key -> path) as the segmenters read it; images
    that cannot be read are left out (their labels are then not checked for size)."""
    from .core.segment.reading import image_size
    shapes = {}
    for key, path in images.items():
        try:
            width, height = image_size(path)
            shapes[key] = (height, width)
        except Exception:  # noqa: BLE001 -- an unreadable image: no size check
            pass
    return shapes


def masks_to_labels(mask: np.ndarray) -> np.ndarray:
    """An object mask (0 background, 1..N objects) as training labels: every pixel
    labelled, background 1 and objects 2 (one kind)."""
    return np.where(np.asarray(mask) > 0, 2, BACKGROUND).astype(np.uint8)


@dataclass
class LoadedLabels:
    """What a folder gave: labels per image key, and a line per file that was refused."""

    labels: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    unmatched: int = 0  # images with no file of their name in the folder


def _candidates(folder: str) -> dict:
    """{file stem: path} of the label images in ``folder`` (not its subfolders)."""
    found = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext.lower() in _SUFFIXES and not name.startswith("."):
            found.setdefault(stem, os.path.join(folder, name))
    return found


def _read(path: str) -> np.ndarray:
    from .core.segment.masks import read_label_image
    return np.asarray(read_label_image(path))


def labels_from_folder(folder: str, images: Mapping[str, str],
                       shapes: Optional[Mapping[str, tuple]] = None,
                       kind: str = LABELS) -> LoadedLabels:
    """Read the label images (``kind`` LABELS) or object masks (MASKS) in ``folder`` that
    have the name of an image: ``images`` maps each image's key to its path, ``shapes``
    (optional) each key to the image's (height, width). A file of another size, with
    more than MAX_LABEL values or with no labels is refused with a line naming it."""
    files = _candidates(folder)
    loaded = LoadedLabels()
    for key, path in images.items():
        stem = os.path.splitext(os.path.basename(path))[0]
        file = files.get(stem)
        if file is None:
            loaded.unmatched += 1
            continue
        try:
            values = _read(file)
        except Exception as ex:  # noqa: BLE001 -- any unreadable file is reported
            loaded.problems.append(f"{os.path.basename(file)}: cannot be read ({ex})")
            continue
        if values.ndim != 2:
            loaded.problems.append(f"{os.path.basename(file)}: not a single-channel image")
            continue
        labels = masks_to_labels(values) if kind == MASKS else values
        expected = shapes.get(key) if shapes else None
        if expected is not None and tuple(labels.shape) != tuple(expected[:2]):
            loaded.problems.append(
                f"{os.path.basename(file)}: {labels.shape[1]}x{labels.shape[0]} pixels, "
                f"but its image has {expected[1]}x{expected[0]}")
        elif labels.max() == 0:
            loaded.problems.append(f"{os.path.basename(file)}: has no labels (all zero)")
        elif kind == LABELS and labels.max() > MAX_LABEL:
            loaded.problems.append(
                f"{os.path.basename(file)}: has label {int(labels.max())}, more than "
                f"{MAX_LABEL - 1} kinds of object; is it an object mask?")
        else:
            loaded.labels[key] = labels.astype(np.uint8)
    return loaded
