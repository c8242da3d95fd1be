"""Reading images for segmentation in their ORIGINAL units: a 16-bit TIFF's counts,
a float TIFF's values, an 8-bit PNG's levels (never the 8-bit display stretch that
embedding uses). Same safety as core.images: only the formats it decodes, the pixel
limit checked from the header, lab TIFFs' first plane and first three channels
(core.labimages), EXIF/TIFF orientation applied; every failure an ImageError.
"""
from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, ImageOps

from ..images import (DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageError, TooManyPixels,
                      header_size, read_bytes)
from ..labimages import is_tiff, open_tiff, orient_array, read_tiff, tiff_shape

__all__ = ["read_original", "image_size"]

def image_size(path: "str | os.PathLike") -> tuple[int, int]:
    """(width, height) as shown, from the header (ImageError otherwise)."""
    return header_size(path)


def _check(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise TooManyPixels(f"{width}x{height} is {width * height / 1e6:.0f} megapixels, over "
                            f"the {max_pixels / 1e6:g} megapixel limit")
    if width == 0 or height == 0:
        raise ImageError("image has no pixels")


def _squeeze(values: np.ndarray) -> np.ndarray:
    return values[:, :, 0] if values.ndim == 3 and values.shape[2] == 1 else values


def _from_tiff(data: "bytes | str", max_pixels: int) -> np.ndarray:
    """The first plane of a TIFF given as bytes or as a local path (read in place)."""
    try:
        if isinstance(data, str):
            import tifffile
            tif = tifffile.TiffFile(data)
        else:
            tif = open_tiff(data)
    except Exception as exc:
        raise ImageError(f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
    with tif:
        try:
            _check(*tiff_shape(tif), max_pixels)
            planes = read_tiff(tif)
        except ImageError:
            raise
        except Exception as exc:
            raise ImageError(f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
    values = orient_array(planes.values, planes.orientation)
    return _squeeze(values)


def _from_pillow(data: bytes, max_pixels: int) -> np.ndarray:
    from ..images import SAFE_FORMATS

    try:
        image = Image.open(io.BytesIO(data))
        if image.format not in SAFE_FORMATS:
            raise ImageError(f"unsupported format: {image.format} (convert it to PNG or TIFF)")
        _check(*image.size, max_pixels)
        if getattr(image, "is_animated", False):
            image.seek(0)
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F", "L", "RGB"):
            values = np.asarray(image)
        elif image.mode == "1":
            values = np.asarray(image.convert("L"))
        elif image.mode in ("LA", "La"):
            values = np.asarray(image.convert("L"))
        else:  # palette, RGBA, CMYK, YCbCr ...: their RGB
            values = np.asarray(image.convert("RGB"))
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(f"too many pixels ({exc})") from None
    except Exception as exc:
        raise ImageError(f"not an image that can be read ({type(exc).__name__}: {exc})") from None
    if values.dtype == np.int32 and values.size and values.min() >= 0 and values.max() <= 65535:
        values = values.astype(np.uint16)  # Pillow widens 16-bit PNGs to mode I
    return values


def read_original(source: "str | os.PathLike", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """H x W (grey) or H x W x C array of an image file in its stored units and dtype.

    Multi-channel lab TIFFs give their first three channels; RGB(A) pictures their
    RGB. Raises ImageError with a one-line reason for anything unusable."""
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels
    source = os.fspath(source)
    if os.path.isfile(source):
        with open(source, "rb") as f:
            head = f.read(4)
        if is_tiff(head) and os.path.getsize(source) <= DEFAULT_MAX_BYTES:
            try:  # read from the file itself: no copy of its bytes in memory
                return _from_tiff(source, max_pixels)
            except TooManyPixels:
                raise
            except ImageError:
                pass  # the bytes' way below gives the reason or Pillow's reading
    data = read_bytes(source)
    if is_tiff(data):
        try:
            return _from_tiff(data, max_pixels)
        except TooManyPixels:
            raise
        except ImageError as tiff_error:  # Pillow has codecs tifffile may lack
            try:
                return _from_pillow(data, max_pixels)
            except ImageError:
                raise tiff_error from None
    return _from_pillow(data, max_pixels)
