"""Masks as label images (0 background, 1..N objects), the format CellProfiler,
Cellpose and QuPath exchange: uint16 PNG while the objects fit in 16 bits, else a
32-bit TIFF. Reading takes PNG or TIFF and gives the stored numbers unchanged (a
label image is never stretched or turned into RGB). Crops of single objects too.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["read_label_image", "write_label_image", "crop_object", "MaskError"]


class MaskError(ValueError):
    """A file that is not a usable label image; the message names it."""


def _read_tiff(path: str) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return tif.pages[0].asarray()


def read_label_image(path: "str | os.PathLike") -> np.ndarray:
    """The 2-D integer array stored in a PNG or TIFF label image (MaskError otherwise).

    A grey or palette PNG gives its values; an RGB(A) one whose channels are all
    equal gives one of them; anything else (colour, float with fractions) is refused."""
    from PIL import Image

    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if head in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
            values = _read_tiff(path)
        else:
            with Image.open(path) as image:
                if image.format not in ("PNG", "TIFF", "BMP", "GIF"):
                    raise MaskError(f"{path}: a label image is a PNG or TIFF, not {image.format}")
                values = np.asarray(image)
    except MaskError:
        raise
    except Exception as exc:
        raise MaskError(f"{path}: not a readable label image ({type(exc).__name__}: {exc})") from None
    if values.ndim == 3:
        if values.shape[2] in (3, 4) and (values[:, :, :3] == values[:, :, :1]).all():
            values = values[:, :, 0]
        elif values.shape[2] == 1:
            values = values[:, :, 0]
        else:
            raise MaskError(f"{path}: a label image has one channel of whole numbers; this "
                            f"one has {values.shape[2]} channels with different values")
    if values.ndim != 2:
        raise MaskError(f"{path}: a label image is 2-D, not of shape {values.shape}")
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            raise MaskError(f"{path}: a label image holds whole numbers, not fractions")
        values = values.astype(np.int64)
    if values.dtype.kind == "b":
        values = values.astype(np.uint8)
    if values.dtype.kind not in "ui":
        raise MaskError(f"{path}: a label image holds whole numbers, not {values.dtype}")
    if values.size and values.min() < 0:
        raise MaskError(f"{path}: a label image has no negative numbers")
    return values


def write_label_image(path: "str | os.PathLike", labels: np.ndarray) -> str:
    """Write a label image: uint16 PNG when the numbers fit (<= 65535), else a
    uint32 TIFF whatever ``path``'s extension (the suffix is then changed to .tif).
    Returns the path written."""
    from PIL import Image

    path = os.fspath(path)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label image is 2-D, not of shape {labels.shape}")
    top = int(labels.max()) if labels.size else 0
    if labels.size and labels.min() < 0:
        raise ValueError("a label image has no negative numbers")
    root, ext = os.path.splitext(path)
    if top <= 65535 and ext.lower() not in (".tif", ".tiff"):
        Image.fromarray(labels.astype(np.uint16)).save(root + ".png" if ext.lower() != ".png"
                                                       else path)
        return root + ".png" if ext.lower() != ".png" else path
    import tifffile

    target = path if ext.lower() in (".tif", ".tiff") else root + ".tif"
    dtype = np.uint16 if top <= 65535 else np.uint32
    tifffile.imwrite(target, labels.astype(dtype), compression="zlib")
    return target


def crop_object(image: np.ndarray, labels: np.ndarray, object_id: int, pad: int = 2) -> np.ndarray:
    """The object's bounding box (plus ``pad`` pixels) cut from ``image``, with pixels
    outside the object kept (context helps an embedding). ValueError for an id that is
    not in ``labels``."""
    from scipy import ndimage as ndi

    if image.shape[:2] != labels.shape:
        raise ValueError("image and label image differ in size")
    where = ndi.find_objects((labels == object_id).view(np.uint8))
    if not where or where[0] is None:
        raise ValueError(f"object {object_id} is not in the label image")
    rows, cols = where[0]
    top, left = max(0, rows.start - pad), max(0, cols.start - pad)
    bottom, right = min(labels.shape[0], rows.stop + pad), min(labels.shape[1], cols.stop + pad)
    return image[top:bottom, left:right].copy()
