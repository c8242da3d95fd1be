"""Segment image files one after another: read in original units, find the objects
(threshold or pixel classifier), measure them, write masks and crops on request.

One image at a time, its pixels reserved in the process's PixelBudget while it is
worked on; the segmenters work on big images in tiles. An image that cannot be
read is a result with a ``skipped_reason``; an image with no objects is a result
with count 0. Nothing per object is kept besides the measurement columns.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Union

import numpy as np

from ..budget import PixelBudget, shared_budget
from ..cancel import Cancelled
from ..images import DEFAULT_MAX_PIXELS, ImageError
from .classifier import PixelClassifier
from .masks import write_label_image
from .objects import ImageSummary, measure_objects, summarise
from .reading import image_size, read_original
from .threshold import ThresholdParams, segment_threshold

__all__ = ["ImageResult", "Segmenter", "segment_image", "segment_paths", "write_crops"]

Segmenter = Union[ThresholdParams, PixelClassifier]


@dataclass(frozen=True)
class ImageResult:
    """What segmenting one image gave: its objects' measurement columns and summary,
    or the reason it was skipped; where its mask and crops were written."""

    path: str
    objects: "dict[str, np.ndarray] | None"
    summary: "ImageSummary | None"
    skipped_reason: "str | None" = None
    mask_path: "str | None" = None
    crop_paths: list[str] = field(default_factory=list)
    width: int = 0
    height: int = 0


def segment_image(image: np.ndarray, segmenter: Segmenter, split_touching: bool = True,
                  diameter: "tuple[float, float] | None" = None
                  ) -> "tuple[np.ndarray, np.ndarray | None, list[str] | None]":
    """(label image, class map or None, class names or None) of one image array.

    For a PixelClassifier, ``split_touching`` and ``diameter`` apply; ThresholdParams
    carry their own."""
    if isinstance(segmenter, ThresholdParams):
        return segment_threshold(image, segmenter), None, None
    if isinstance(segmenter, PixelClassifier):
        labels, class_map = segmenter.segment(image, split_touching, diameter)
        return labels, class_map, list(segmenter.class_names)
    raise TypeError(f"a segmenter is ThresholdParams or a PixelClassifier, not "
                    f"{type(segmenter).__name__}")


def _unique_name(folder: str, stem: str, used: set[str]) -> str:
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem}_{n}"
    used.add(name)
    return os.path.join(folder, name)


def _crop_array(crop: np.ndarray) -> tuple[np.ndarray, str]:
    """A crop as it is saved: PNG for 8-bit and for 16-bit grey, TIFF otherwise."""
    if crop.dtype == np.uint8 or (crop.dtype == np.uint16 and crop.ndim == 2):
        return crop, ".png"
    return crop, ".tif"


def write_crops(image: np.ndarray, objects: dict, stem_path: str, pad: int = 2) -> list[str]:
    """Write each object's bounding box (plus ``pad``) of ``image`` as its own file,
    named ``<stem>_<id>.png`` (or .tif for data PNG cannot hold); returns the paths."""
    from PIL import Image

    paths = []
    height, width = image.shape[:2]
    for i, object_id in enumerate(objects["id"]):
        top = max(0, int(objects["bbox_min_row"][i]) - pad)
        left = max(0, int(objects["bbox_min_col"][i]) - pad)
        bottom = min(height, int(objects["bbox_max_row"][i]) + pad)
        right = min(width, int(objects["bbox_max_col"][i]) + pad)
        crop, ext = _crop_array(image[top:bottom, left:right])
        path = f"{stem_path}_{int(object_id)}{ext}"
        if ext == ".png":
            Image.fromarray(np.ascontiguousarray(crop)).save(path)
        else:
            import tifffile
            tifffile.imwrite(path, np.ascontiguousarray(crop))
        paths.append(path)
    return paths


def _segment_one(path: str, segmenter: Segmenter, options: dict, max_pixels: int,
                 budget: PixelBudget, masks_out, crops_out, used: dict) -> ImageResult:
    try:
        if not os.path.isfile(path):
            raise ImageError("is a folder, not an image" if os.path.isdir(path) else "file not found")
        width, height = image_size(path)
        if width * height > max_pixels:
            raise ImageError(f"{width}x{height} is {width * height / 1e6:.0f} megapixels, "
                             f"over the {max_pixels / 1e6:g} megapixel limit")
        with budget.reserve(width * height):
            image = read_original(path, max_pixels)
            labels, class_map, names = segment_image(image, segmenter, **options)
            objects = measure_objects(labels, image, class_map, names)
            summary = summarise(labels)
            stem = os.path.splitext(os.path.basename(path))[0]
            mask_path = crop_paths = None
            if masks_out is not None:
                mask_path = write_label_image(
                    _unique_name(masks_out, stem, used["masks"]) + ".png", labels)
            if crops_out is not None:
                crop_paths = write_crops(image, objects, _unique_name(crops_out, stem,
                                                                       used["crops"]))
    except ImageError as exc:
        return ImageResult(path, None, None, str(exc))
    except MemoryError:
        return ImageResult(path, None, None, "not enough memory to segment this image")
    except OSError as exc:
        return ImageResult(path, None, None, f"could not be read or written ({exc})")
    return ImageResult(path, objects, summary, None, mask_path, crop_paths or [],
                       image.shape[1], image.shape[0])


def segment_paths(paths: Iterable["str | os.PathLike"], segmenter: Segmenter,
                  masks_out: "str | os.PathLike | None" = None,
                  crops_out: "str | os.PathLike | None" = None,
                  progress: "Callable[[float], None] | None" = None,
                  is_cancelled: "Callable[[], bool] | None" = None,
                  max_pixels: int = DEFAULT_MAX_PIXELS,
                  budget: "PixelBudget | None" = None, split_touching: bool = True,
                  diameter: "tuple[float, float] | None" = None) -> Iterator[ImageResult]:
    """One ImageResult per path, in order (see module doc). ``progress`` gets the
    fraction done (0..1) after each image; Cancelled is raised before the next image
    when ``is_cancelled()`` says so (results already yielded stand).
    ``split_touching`` and ``diameter`` apply to a PixelClassifier (ThresholdParams
    carry their own)."""
    paths = [os.fspath(p) for p in paths]
    for folder in (masks_out, crops_out):
        if folder is not None:
            os.makedirs(folder, exist_ok=True)
    masks_out = os.fspath(masks_out) if masks_out is not None else None
    crops_out = os.fspath(crops_out) if crops_out is not None else None
    budget = budget or shared_budget()
    used: dict[str, set[str]] = {"masks": set(), "crops": set()}
    options = ({"split_touching": split_touching, "diameter": diameter}
               if isinstance(segmenter, PixelClassifier) else {})
    for done, path in enumerate(paths, start=1):
        if is_cancelled is not None and is_cancelled():
            raise Cancelled()
        yield _segment_one(path, segmenter, options, max_pixels, budget, masks_out, crops_out,
                           used)
        if progress is not None:
            progress(done / len(paths))
