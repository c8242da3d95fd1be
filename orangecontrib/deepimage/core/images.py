"""Find and decode images. Every failure is a reason, never a crash.

Decoding fixes what labs' files throw at a network: EXIF rotation, 16-bit and
float data, multi-channel and multi-page TIFFs (core.labimages), alpha (composited
on white), palettes, CMYK, animations (first frame). Only formats Pillow decodes
itself are read (SAFE_FORMATS): never one that would start another program, such
as Ghostscript for EPS. Size is checked from the header, before any pixel is
decoded, so a decompression bomb costs nothing; big images are shrunk before they
are converted, and a PixelBudget bounds what concurrent decoders hold together.
"""
from __future__ import annotations

import contextlib
import io
import os
import stat
import threading
import warnings
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from . import urls
from .folders import is_hidden, is_regular_file, list_folder
from .budget import BudgetTimeout, PixelBudget, return_free_memory
from .labimages import (TRANSPOSE_FOR_ORIENTATION, PillowPlane, crop_box, is_tiff,
                        open_tiff, pillow_misreads, planes_to_rgb, read_tiff, tiff_shape)

__all__ = ["IMAGE_EXTENSIONS", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_BYTES", "SAFE_FORMATS",
           "Skipped", "ImageError", "TooManyPixels", "UnsupportedFormat", "find_images",
           "read_bytes", "decode_image", "load_image", "is_url", "is_hidden", "shown_size",
           "header_size"]

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".bmp", ".dib",
    ".gif", ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".ico", ".jp2", ".j2k", ".tga",
})
DEFAULT_MAX_PIXELS = 100_000_000

#: formats decoded, all by Pillow's own code (TIFFs it cannot read by tifffile); never
#: EPS/PS/PDF (Ghostscript), WMF (the system's renderer) or rarely used parsers
SAFE_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "DIB", "TIFF", "WEBP", "PPM",
                          "ICO", "TGA", "JPEG2000", "AVIF"})
#: formats Pillow has no reader for, named in the reason so people know what to convert
_OTHER_SIGNATURES = ((b"%PDF", "PDF"), (b"<svg", "SVG"), (b"<?xml", "XML/SVG"))
_ISO_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"heim": "HEIC",
               b"heis": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF",
               b"avis": "AVIF"}
#: Pillow modes deeper than 8 bits per pixel: stretched by core.labimages
_DEEP_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
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


class UnsupportedFormat(ImageError):
    """A file in a format we do not decode (EPS, PDF, HEIC ...); nothing was decoded."""


def is_url(source: str) -> bool:
    """An http(s) or data: URL (core.urls reads those), not a file path."""
    return urls.is_url(source)


def find_images(paths: "Iterable[str | os.PathLike] | str | os.PathLike",
                recursive: bool = True,
                extensions: Iterable[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Image files in the given files and folders, in a stable order.

    Folders are searched recursively (core.folders.list_folder: hidden and system
    files, and anything but regular files, left out; nothing is opened), and
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
        folder_images, stack = [], [path]
        while stack:
            try:
                listing = list_folder(stack.pop())
            except OSError:  # an unreadable subfolder is left out, the rest found
                continue
            stack += listing.folders if recursive else []
            folder_images += [f for f in listing.files
                              if os.path.splitext(f)[1].lower() in extensions]
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
            data = urls.fetch(source, max_bytes, timeout)
        else:
            status = os.stat(source)
            if stat.S_ISDIR(status.st_mode):
                raise IsADirectoryError(source)
            if not stat.S_ISREG(status.st_mode):  # opening a named pipe would wait forever
                raise ImageError("not a regular file (a named pipe, socket or device)")
            size = status.st_size
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


def _center_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The largest central region with the aspect ratio of ``size``."""
    left, top, width, height = crop_box(image.width, image.height, size)
    return image.crop((left, top, left + width, top + height))


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
                 max_pixels: int = DEFAULT_MAX_PIXELS, crop: bool = False,
                 budget: "PixelBudget | None" = None,
                 budget_timeout: "float | None" = None) -> np.ndarray:
    """Decode image bytes to uint8 RGB, H x W x 3, resized to ``size`` (w, h).

    The whole image is resized (nothing at the edges of a micrograph is lost);
    with ``crop``, the central region of the target's aspect ratio is kept instead,
    as ImageNet training did. Only SAFE_FORMATS are read (UnsupportedFormat for
    the rest); lab TIFFs are mapped to RGB as core.labimages describes. With a
    ``budget``, the pixels being decoded are reserved in it first (BudgetTimeout
    after ``budget_timeout`` seconds; None waits). Raises ImageError with a
    one-line reason for anything that is not a usable image.
    """
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        # Pillow refuses images over twice its own limit before our check can run;
        # a caller who asked for a higher limit gets it (raised, never lowered).
        Image.MAX_IMAGE_PIXELS = max_pixels
    with _truncated_images_refused():
        return _decode(data, size, max_pixels, crop, budget, budget_timeout)


def _allowed_formats() -> "tuple[str, ...]":
    """SAFE_FORMATS this Pillow has, in Pillow's own order of trying them."""
    global _allowed
    if _allowed is None:
        Image.init()
        _allowed = tuple(f for f in Image.ID if f in SAFE_FORMATS)
    return _allowed


_allowed: "tuple[str, ...] | None" = None


def _refused_format(data: bytes) -> "str | None":
    """The name of the format ``data`` is in, if it is one we do not decode."""
    for signature, name in _OTHER_SIGNATURES:
        if data.startswith(signature):
            return name
    if data[4:8] == b"ftyp" and data[8:12] in _ISO_BRANDS:
        return _ISO_BRANDS[data[8:12]]
    prefix = data[:16]
    for name in Image.ID:  # Pillow's own checks of the first bytes, nothing decoded
        if name in SAFE_FORMATS:
            continue
        accept = Image.OPEN[name][1]
        try:
            if accept is not None and accept(prefix):
                return name
        except Exception:
            continue
    return None


def _open(data: bytes) -> "Image.Image | None":
    """Pillow's lazy image (header only) in a safe format; None for a TIFF that Pillow
    cannot open (tifffile reads it)."""
    try:
        return Image.open(io.BytesIO(data), formats=_allowed_formats())
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(f"too many pixels ({exc})") from None
    except Exception as exc:
        if is_tiff(data):
            return None
        if isinstance(exc, UnidentifiedImageError):
            refused = _refused_format(data)
            if refused is not None:
                raise UnsupportedFormat(
                    f"unsupported format: {refused} (convert it to PNG, TIFF or JPEG)"
                ) from None
            raise ImageError("not an image Pillow can read") from None
        raise ImageError(f"not a readable image ({type(exc).__name__}: {exc})") from None


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise TooManyPixels(f"{width}x{height} is {width * height / 1e6:.0f} megapixels, over "
                            f"the {max_pixels / 1e6:g} megapixel limit")
    if width == 0 or height == 0:
        raise ImageError("image has no pixels")


#: after decoding more pixels than this, freed memory is handed back to the system
_RETURN_MEMORY_ABOVE = 4_000_000


@contextlib.contextmanager
def _reserved(budget: "PixelBudget | None", pixels: int, timeout: "float | None"):
    """Hold ``pixels`` of ``budget`` while decoding; afterwards give back the memory
    the decode freed, then the pixels (so the next decoder finds the memory free)."""
    if budget is not None:
        budget.acquire(pixels, timeout)
    try:
        yield
    finally:
        if pixels > _RETURN_MEMORY_ABOVE:
            return_free_memory()
        if budget is not None:
            budget.release(pixels)


class _NeedsCodec(ImageError):
    """tifffile lacks this TIFF's compression codec (Pillow may have it)."""


def _decode_tiff(data: bytes, size, max_pixels: int, crop: bool, budget,
                 timeout) -> np.ndarray:
    try:
        tif = open_tiff(data)
    except ImportError:
        raise ImageError("reading this TIFF needs the tifffile package: "
                         "pip install tifffile") from None
    except Exception as exc:
        raise ImageError(f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
    with tif:
        try:
            width, height = tiff_shape(tif)
        except Exception as exc:
            raise ImageError(f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
        _check_pixels(width, height, max_pixels)
        with _reserved(budget, width * height, timeout):
            try:
                planes = read_tiff(tif)
                pixels = planes_to_rgb(planes.values, size, crop, planes.rgb,
                                       planes.orientation)
                del planes  # freed before the budget is given back
                return pixels
            except ValueError as exc:
                if "imagecodecs" not in str(exc):
                    raise ImageError(f"not a readable TIFF ({exc})") from None
                compression = tif.pages[0].compression.name
                raise _NeedsCodec(f"TIFF compressed with {compression}: install imagecodecs "
                                  f"(pip install imagecodecs) to read it") from None
            except (MemoryError, ImageError):
                raise
            except Exception as exc:
                raise ImageError(f"not a readable TIFF ({type(exc).__name__}: {exc})") from None


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112) or 1)
    except Exception:  # a broken EXIF block does not make a broken image
        return 1


def _photo_to_rgb(image: Image.Image, size, crop: bool, orientation: int) -> np.ndarray:
    """8-bit Pillow image -> RGB at ``size``: resized before alpha is composited on white,
    turned by its EXIF orientation last (the work is done at the small size)."""
    mode = image.mode
    if mode in ("LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    elif mode == "1":
        image = image.convert("L")
    elif mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGB")
    if size is not None:
        target = (size[1], size[0]) if orientation in _TRANSPOSED_ORIENTATIONS else tuple(size)
        if crop:
            image = _center_crop(image, target)
        if image.size != target:
            image = image.resize(target, Image.Resampling.BILINEAR, reducing_gap=3.0)
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    if orientation in TRANSPOSE_FOR_ORIENTATION:
        image = image.transpose(TRANSPOSE_FOR_ORIENTATION[orientation])
    return np.asarray(image, dtype=np.uint8)


def _decode_pillow(image: Image.Image, size, crop: bool, budget, timeout) -> np.ndarray:
    if getattr(image, "is_animated", False):
        image.seek(0)
    if size is not None and image.format in ("JPEG", "MPO"):
        # decode at 1/2, 1/4 or 1/8 scale when the result is still big enough
        side = max(size)
        image.draft(image.mode if image.mode in ("RGB", "L") else None, (side, side))
    with _reserved(budget, image.width * image.height, timeout):
        try:
            orientation = _orientation(image)  # a PNG's EXIF may follow its pixels: loads
            if image.mode in _DEEP_MODES:
                return planes_to_rgb(PillowPlane(image), size, crop, orientation=orientation)
            return _photo_to_rgb(image, size, crop, orientation)
        finally:
            image.close()  # its pixels are freed before the budget is given back


def _decode(data: bytes, size: "tuple[int, int] | None", max_pixels: int, crop: bool,
            budget: "PixelBudget | None", timeout: "float | None") -> np.ndarray:
    image = _open(data)
    try:
        if image is not None:
            _check_pixels(*image.size, max_pixels)
        if image is None or (image.format == "TIFF" and pillow_misreads(image)):
            try:
                return _decode_tiff(data, size, max_pixels, crop, budget, timeout)
            except _NeedsCodec as exc:
                if image is None:
                    raise ImageError(str(exc)) from None
                try:  # Pillow has more codecs (its first page: a deep RGB one at 8 bits)
                    return _decode_pillow(image, size, crop, budget, timeout)
                except BudgetTimeout:
                    raise
                except Exception:
                    raise ImageError(str(exc)) from None
        return _decode_pillow(image, size, crop, budget, timeout)
    except ImageError:
        raise
    except OSError as exc:
        message = str(exc)
        if "truncated" in message or "broken data stream" in message:
            raise ImageError(f"file is truncated or corrupt ({message})") from None
        raise ImageError(f"could not be decoded ({message})") from None
    except (ValueError, SyntaxError, MemoryError, EOFError, IndexError, TypeError,
            KeyError, ZeroDivisionError) as exc:
        raise ImageError(f"could not be decoded ({type(exc).__name__}: {exc})") from None
    finally:
        if image is not None:
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


def header_size(path: "str | os.PathLike") -> "tuple[int, int]":
    """(width, height) as shown (EXIF rotation applied), from the header alone.

    Reads only formats that decoding accepts, so a file Import Images lists is one that
    embedding can decode; raises ImageError (UnsupportedFormat for EPS, PDF, ...) with
    the reason otherwise. TIFFs that Pillow cannot open are measured by tifffile.
    """
    if os.path.exists(path) and not is_regular_file(path):  # never open a named pipe
        raise ImageError("is a folder, not an image" if os.path.isdir(path) else
                         "not a regular file (a named pipe, socket or device)")
    try:
        with Image.open(path, formats=_allowed_formats()) as image:
            return shown_size(image)
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(f"too many pixels ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        if isinstance(exc, PermissionError):
            raise ImageError("permission denied") from None
        with open(path, "rb") as f:
            head = f.read(64)
        if is_tiff(head):
            import tifffile
            try:
                with tifffile.TiffFile(path) as tif:
                    return tiff_shape(tif)
            except Exception as tiff_exc:
                raise ImageError(f"unreadable TIFF header ({type(tiff_exc).__name__}: "
                                 f"{tiff_exc})") from None
        refused = _refused_format(head)
        if refused is not None:
            raise UnsupportedFormat(
                f"unsupported format: {refused} (convert it to PNG, TIFF or JPEG)") from None
        if isinstance(exc, UnidentifiedImageError):
            raise ImageError("not an image Pillow can read") from None
        raise ImageError(f"unreadable header ({type(exc).__name__}: {exc})") from None


def describe(path: "str | os.PathLike") -> dict:
    """Cheap facts about an image file from its header: size in bytes, width, height."""
    info = {"size": None, "width": None, "height": None}
    if not is_regular_file(path):  # missing, or a named pipe that open() would wait on
        return info
    try:
        info["size"] = os.path.getsize(path)
        with Image.open(path, formats=_allowed_formats()) as image:
            info["width"], info["height"] = image.size
    except Exception:  # a bad file is reported by decoding, not here
        pass
    return info
