"""Find and decode images. Every failure is a reason, never a crash.

Decoding fixes what labs' files throw at a network: EXIF rotation, 16-bit
greyscale (scaled by its real range, not by 255), alpha (composited on white),
palettes, CMYK, animations (first frame). Size is checked from the header,
before any pixel is decoded, so a decompression bomb costs nothing.
"""
from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from . import remote

__all__ = ["IMAGE_EXTENSIONS", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_BYTES", "Skipped",
           "ImageError", "TooManyPixels", "find_images", "read_bytes", "decode_image",
           "load_image", "is_url", "is_hidden", "shown_size"]

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".bmp", ".dib",
    ".gif", ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".ico", ".jp2", ".j2k", ".tga",
})
DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB: no image file we can decode is bigger

# We check the pixel count ourselves (configurable); Pillow's own warning for
# images over its fixed limit would only repeat that check less usefully.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class Skipped:
    """An input that produced no embedding, and why (one line, for people)."""

    index: int
    source: str
    reason: str


class ImageError(Exception):
    """An image could not be used; ``str(error)`` is the one-line reason."""


class TooManyPixels(ImageError):
    """The header gives more pixels than the limit (nothing was decoded)."""


def is_url(source: str) -> bool:
    """An http(s) or data: URL (core.remote reads those), not a file path."""
    return remote.is_url(source)


def is_hidden(name: str) -> bool:
    """Hidden files and folders (dot files, macOS archive folders), skipped when scanning."""
    return name.startswith(".") or name.startswith("__MACOSX")


def find_images(paths: "Iterable[str | os.PathLike] | str | os.PathLike",
                recursive: bool = True,
                extensions: Iterable[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Image files in the given files and folders, in a stable order.

    Folders are searched recursively (hidden files and folders skipped), and
    their images sorted by path; files named explicitly are kept whatever their
    extension (a bad one is reported when it is decoded) and in the given order.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    extensions = frozenset(e.lower() for e in extensions)
    found: list[str] = []
    for path in paths:
        path = os.fspath(path)
        if is_url(path) or not os.path.isdir(path):
            found.append(path)
            continue
        folder_images = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not is_hidden(d)) if recursive else []
            folder_images += [os.path.join(root, f) for f in files
                              if not is_hidden(f) and os.path.splitext(f)[1].lower() in extensions]
        found += sorted(folder_images, key=lambda p: os.path.relpath(p, path).split(os.sep))
    return found


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.0f} MiB" if size >= 2**20 else f"{size:,} bytes"


def read_bytes(source: "str | os.PathLike", max_bytes: int = DEFAULT_MAX_BYTES,
               timeout: float = 30.0) -> bytes:
    """The raw bytes of a file or http(s) URL; ImageError with a reason otherwise."""
    source = os.fspath(source)
    try:
        if is_url(source):  # fetched once into a disk cache; data: URLs decoded
            data = remote.fetch(source, max_bytes, timeout)
        else:
            size = os.path.getsize(source)
            if size > max_bytes:
                raise ImageError(f"file is {_megabytes(size)}, over the "
                                 f"{_megabytes(max_bytes)} limit")
            with open(source, "rb") as f:
                data = f.read()
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError("file not found") from None
    except IsADirectoryError:
        raise ImageError("is a folder, not an image") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except OSError as exc:  # includes URLError and HTTPError
        raise ImageError(f"could not be read ({exc})") from None
    if len(data) > max_bytes:
        raise ImageError(f"over the {_megabytes(max_bytes)} limit")
    if not data:
        raise ImageError("empty file (0 bytes)")
    return data


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB, as a person would see the image."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float32)
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        grey = np.nan_to_num(scaled, nan=0.0).clip(0, 255).round().astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _center_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The largest central region with the aspect ratio of ``size``."""
    width, height = image.size
    target = size[0] / size[1]
    if width / height > target:
        new_width = max(1, round(height * target))
        left = (width - new_width) // 2
        return image.crop((left, 0, left + new_width, height))
    new_height = max(1, round(width / target))
    top = (height - new_height) // 2
    return image.crop((0, top, width, top + new_height))


_strict_lock = threading.Lock()
_strict_users = 0
_saved_truncated_flag = False


@contextlib.contextmanager
def _truncated_images_refused():
    """Make Pillow refuse truncated files while we decode, whatever the global says.

    ``ImageFile.LOAD_TRUNCATED_IMAGES`` is process-wide, and other code sets it
    (orange3-imageanalytics does on import); with it on, a cut-off JPEG decodes
    into grey padding and would be embedded as if it were whole. The first of
    any concurrent decoders turns it off and the last restores what it was, so
    decoding in several threads is not serialised.
    """
    global _strict_users, _saved_truncated_flag
    with _strict_lock:
        if _strict_users == 0:
            _saved_truncated_flag = ImageFile.LOAD_TRUNCATED_IMAGES
        _strict_users += 1
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        with _strict_lock:
            _strict_users -= 1
            if _strict_users == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES = _saved_truncated_flag


def decode_image(data: bytes, size: "tuple[int, int] | None" = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, crop: bool = False) -> np.ndarray:
    """Decode image bytes to uint8 RGB, H x W x 3, resized to ``size`` (w, h).

    The whole image is resized (nothing at the edges of a micrograph is lost);
    with ``crop``, the central region of the target's aspect ratio is kept instead,
    as ImageNet training did. Raises ImageError with a one-line reason for
    anything that is not a usable image.
    """
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        # Pillow refuses images over twice its own limit before our check can run;
        # a caller who asked for a higher limit gets it (raised, never lowered).
        Image.MAX_IMAGE_PIXELS = max_pixels
    with _truncated_images_refused():
        return _decode(data, size, max_pixels, crop)


def _decode(data: bytes, size: "tuple[int, int] | None", max_pixels: int,
            crop: bool) -> np.ndarray:
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(f"too many pixels ({exc})") from None
    except Exception as exc:
        raise ImageError(f"not a readable image ({type(exc).__name__}: {exc})") from None
    try:
        width, height = image.size
        if width * height > max_pixels:
            raise TooManyPixels(f"{width}x{height} is {width * height / 1e6:.0f} megapixels, over "
                             f"the {max_pixels / 1e6:g} megapixel limit")
        if width == 0 or height == 0:
            raise ImageError("image has no pixels")
        if getattr(image, "is_animated", False):
            image.seek(0)
        if size is not None and image.format == "JPEG":
            # decode at 1/2, 1/4 or 1/8 scale when the result is still big enough
            side = max(size)
            image.draft(image.mode if image.mode in ("RGB", "L") else None, (side, side))
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image)
        if size is not None and crop:
            image = _center_crop(image, tuple(size))
        if size is not None and image.size != tuple(size):
            image = image.resize(tuple(size), Image.Resampling.BILINEAR, reducing_gap=3.0)
        return np.asarray(image, dtype=np.uint8)
    except ImageError:
        raise
    except OSError as exc:
        message = str(exc)
        if "truncated" in message or "broken data stream" in message:
            raise ImageError(f"file is truncated or corrupt ({message})") from None
        raise ImageError(f"could not be decoded ({message})") from None
    except (ValueError, SyntaxError, MemoryError, EOFError, IndexError, TypeError,
            ZeroDivisionError) as exc:
        raise ImageError(f"could not be decoded ({type(exc).__name__}: {exc})") from None
    finally:
        image.close()


def load_image(source: "str | os.PathLike", size: "tuple[int, int] | None" = None,
               max_pixels: int = DEFAULT_MAX_PIXELS, crop: bool = False) -> np.ndarray:
    """Read and decode one file or URL (see decode_image)."""
    return decode_image(read_bytes(source), size, max_pixels, crop)


#: EXIF orientations that turn the picture by 90 degrees (width and height swap)
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}


def shown_size(image: Image.Image) -> "tuple[int, int]":
    """(width, height) of an opened image as it is shown: EXIF rotation by 90 degrees
    swaps them. Reads the header only; a broken EXIF block counts as no rotation."""
    width, height = image.size
    try:
        orientation = image.getexif().get(0x0112)
    except Exception:  # a broken EXIF block does not make a broken image
        orientation = None
    return (height, width) if orientation in _TRANSPOSED_ORIENTATIONS else (width, height)


def describe(path: "str | os.PathLike") -> dict:
    """Cheap facts about an image file from its header: size in bytes, width, height."""
    info = {"size": None, "width": None, "height": None}
    try:
        info["size"] = os.path.getsize(path)
        with Image.open(path) as image:
            info["width"], info["height"] = image.size
    except Exception:  # a bad file is reported by decoding, not here
        pass
    return info
