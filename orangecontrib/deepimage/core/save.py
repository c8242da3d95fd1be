"""Write images to a folder, optionally in subfolders, converted and resized. No Qt.

Decoding is core.images' (EXIF rotation, 16-bit, alpha on white); a file already
in the target format that needs no resizing is copied byte for byte. A file that is
already there is never overwritten silently: it is kept (the image is reported as
skipped), the new one gets a unique name, or, only when asked, it is replaced.
"""
from __future__ import annotations

import io
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

from PIL import Image

from .atomic import atomic_path, remove_quietly
from .images import ImageError, Skipped, decode_image, is_url, read_bytes, shown_size
from .portable import safe_file_name

__all__ = ["FORMATS", "KEEP", "RENAME", "REPLACE", "EXISTING", "SaveItem", "SaveOptions",
           "SaveReport", "safe_subfolder", "file_stem", "plan_targets", "save_image",
           "save_images"]

#: format key -> (Pillow's format name, file extension, other extensions of that format)
FORMATS = {
    "png": ("PNG", ".png", ()),
    "jpg": ("JPEG", ".jpg", (".jpeg", ".jpe", ".jfif")),
    "webp": ("WEBP", ".webp", ()),
    "tiff": ("TIFF", ".tif", (".tiff",)),
    "bmp": ("BMP", ".bmp", ()),
    "gif": ("GIF", ".gif", ()),
}
KEEP, RENAME, REPLACE = "keep", "rename", "replace"
#: what to do when a file of the same name is already there
EXISTING = (KEEP, RENAME, REPLACE)


@dataclass(frozen=True)
class SaveItem:
    """One image to write: its row, where it comes from, its subfolder and file name stem."""

    index: int
    source: str
    subfolder: str = ""
    stem: str = ""


@dataclass(frozen=True)
class SaveOptions:
    folder: str
    file_format: str = "png"
    max_side: Optional[int] = None  # fit within max_side x max_side (aspect kept, never enlarged)
    existing: str = KEEP
    quality: int = 90  # JPEG and WebP

    def __post_init__(self):
        if self.file_format not in FORMATS:
            raise ValueError(f"Unknown format {self.file_format!r}; choose one of "
                             f"{', '.join(FORMATS)}.")
        if self.existing not in EXISTING:
            raise ValueError(f"'existing' must be one of {', '.join(EXISTING)}.")


@dataclass
class SaveReport:
    """What was written (row, path), what was not (with reasons), and counts."""

    written: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # Skipped(index, source, reason)
    already_there: int = 0  # kept because a file of that name existed (KEEP)
    renamed: int = 0  # written as name-2, name-3... because the name was taken
    replaced: int = 0
    cancelled: bool = False
    total: int = 0


def safe_subfolder(value: str) -> str:
    """A relative folder for a column value: "a/b" stays nested (as Import Images reads
    class folders), ".." and absolute parts are dropped, and each part is a name every
    system accepts (core.portable.safe_file_name)."""
    parts = [safe_file_name(p) for p in re.split(r"[/\\]", str(value))]
    return "/".join(p for p in parts if p)


def file_stem(source: str, index: int) -> str:
    """The file name without its extension, from a path or URL; image-<row> when none."""
    if source.lower().startswith("data:"):
        name = ""
    elif is_url(source):
        name = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(source).path))
    else:
        name = os.path.basename(source.replace("\\", "/"))
    stem = safe_file_name(os.path.splitext(name)[0] if "." in name[1:] else name)
    return stem or f"image-{index + 1}"


def plan_targets(items: Sequence[SaveItem], options: SaveOptions
                 ) -> "list[tuple[str, bool]]":
    """(target path, renamed) for each item. Two items never share a target (the later
    gets "name-2"); with RENAME an existing file's name is not reused either."""
    ext = FORMATS[options.file_format][1]
    taken: set[str] = set()
    out = []
    for item in items:
        folder = os.path.join(options.folder, *item.subfolder.split("/")) if item.subfolder \
            else options.folder
        base = os.path.join(folder, item.stem or f"image-{item.index + 1}")
        target, n = base + ext, 1
        while target.casefold() in taken or (options.existing == RENAME and
                                             os.path.lexists(target)):
            n += 1
            target = f"{base}-{n}{ext}"
        taken.add(target.casefold())
        out.append((target, n > 1))
    return out


def _fitted_size(data: bytes, max_side: int) -> "tuple[int, int] | None":
    """The shown size fitted into max_side (never enlarged); None when no resizing is needed."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = shown_size(header)
    except Exception:
        return None  # decode_image gives the reason
    scale = max_side / max(width, height, 1)
    if scale >= 1:
        return None
    return max(1, round(width * scale)), max(1, round(height * scale))


def _same_format(data: bytes, pil_format: str) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as header:
            return header.format == pil_format and not getattr(header, "is_animated", False)
    except Exception:
        return False


def _write(target: str, payload: bytes, replace: bool) -> None:
    """Write ``payload`` to ``target``; refuses an existing file unless ``replace``."""
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    if not replace:
        with open(target, "xb") as f:  # exclusive: never overwrites, even in a race
            try:
                f.write(payload)
            except BaseException:  # a full disk or Ctrl+C: no half-written image stays
                f.close()
                remove_quietly(target)
                raise
        return
    with atomic_path(target) as temporary, open(temporary, "wb") as f:
        f.write(payload)


def save_image(source: str, target: str, options: SaveOptions, replace: bool = False) -> None:
    """Write one image to ``target`` in ``options.file_format``. Raises ImageError with a
    one-line reason when the source cannot be read or decoded, FileExistsError when
    ``target`` exists and not ``replace``, OSError when it cannot be written."""
    data = read_bytes(source)
    pil_format = FORMATS[options.file_format][0]
    size = _fitted_size(data, options.max_side) if options.max_side else None
    if size is None and _same_format(data, pil_format):
        payload = data  # already right: a byte-for-byte copy keeps its quality and metadata
    else:
        pixels = decode_image(data, size)
        buffer = io.BytesIO()
        extra = {"quality": options.quality} if pil_format in ("JPEG", "WEBP") else {}
        Image.fromarray(pixels).save(buffer, format=pil_format, **extra)
        payload = buffer.getvalue()
    _write(target, payload, replace)


def save_images(items: Iterable[SaveItem], options: SaveOptions,
                should_stop: Callable[[], bool] = lambda: False,
                progress: Callable[[int, int], None] = lambda done, total: None) -> SaveReport:
    """Write every item; a failure skips that image with its reason and the rest go on.

    ``progress(done, total)`` after each image. When ``should_stop()`` turns true the
    images written so far stay and the report says ``cancelled``. Raises OSError only
    when the folder itself cannot be made.
    """
    items = list(items)
    report = SaveReport(total=len(items))
    os.makedirs(options.folder, exist_ok=True)
    targets = plan_targets(items, options)
    for done, (item, (target, renamed)) in enumerate(zip(items, targets, strict=True), 1):
        if should_stop():
            report.cancelled = True
            break
        existed = os.path.lexists(target)
        try:
            if not item.source:
                raise ImageError("no file name")
            save_image(item.source, target, options, replace=options.existing == REPLACE)
        except FileExistsError:
            report.already_there += 1
            report.skipped.append(Skipped(item.index, item.source,
                                          f"{target} is already there and was kept"))
        except ImageError as exc:
            report.skipped.append(Skipped(item.index, item.source, str(exc)))
        except OSError as exc:
            report.skipped.append(Skipped(item.index, item.source,
                                          f"could not write {target} ({exc.strerror or exc})"))
        else:
            report.written.append((item.index, target))
            report.renamed += renamed
            report.replaced += existed
        progress(done, len(items))
    return report

