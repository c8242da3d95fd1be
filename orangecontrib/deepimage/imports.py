"""Import a folder of images as an Orange table: the work behind Import Images. No Qt.

One pass over the folder lists every file; each file's header is then read once
(in a few threads, since this is disk-bound) for its width and height, and nothing
is decoded. Images are recognised by their contents, as orange3-imageanalytics does,
not only by the extension: a photo with no extension, or saved as .jfif or .pjp, is
imported. Files that cannot be used (not an image, empty, unreadable header) go
to a second table with the reason, so an odd file is reported and never fatal.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional

from Orange.data import Table

from .core.cancel import Cancelled
from .core.folders import list_folder
from .core.images import IMAGE_EXTENSIONS, ImageError, header_size
from .data import image_table, with_reasons

__all__ = ["FolderScan", "ImportResult", "scan_folder", "probe_image",
           "run_import", "summary"]

#: EXIF orientations that turn the picture by 90 degrees (width and height swap)
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}
_CHUNK = 500  # files per progress step and cancellation check
UNKNOWN_FORMAT = "not an image Pillow can read (unknown or corrupt header)"


@dataclass(frozen=True)
class FolderScan:
    """Every visible file under a root: candidate images and the rest."""

    root: str
    images: tuple[str, ...]
    others: tuple[str, ...]


@dataclass(frozen=True)
class ImportResult:
    """What Import Images sends: the images, the skipped files, and counts for the summary."""

    root: str
    data: Optional[Table]
    skipped: Optional[Table]
    n_images: int
    n_classes: int
    n_skipped: int


def _sort_key(root: str) -> Callable[[str], list[str]]:
    """Sort by path components under root (so "a/b.jpg" comes before "a-c/d.jpg")."""
    start = len(os.path.join(root, ""))
    return lambda path: path[start:].split(os.sep)


def scan_folder(root: str, should_stop: Callable[[], bool] = lambda: False,
                on_found: Callable[[int], None] = lambda n: None) -> FolderScan:
    """List the files under ``root`` (recursively; core.folders.list_folder leaves out
    hidden and system files and anything that is not a regular file), sorted by path.

    Files are split by extension only; nothing is opened. ``on_found`` is told the
    running count every few hundred files, since the total is not known yet.
    """
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise NotADirectoryError(f"'{root}' is not a folder (it was moved or deleted?); "
                                 "choose the folder again.")
    images: list[str] = []
    others: list[str] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            listing = list_folder(folder)
        except OSError:  # an unreadable subfolder is left out, the rest imported
            continue
        stack += listing.folders
        for path in listing.files:
            if os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS:
                images.append(path)
            else:
                others.append(path)
        if should_stop():
            raise Cancelled()
        on_found(len(images) + len(others))
    key = _sort_key(root)
    return FolderScan(root, tuple(sorted(images, key=key)), tuple(sorted(others, key=key)))


def probe_image(path: str) -> "tuple[dict, Optional[str]]":
    """({size, width, height}, None) from the file's header, or (partial info, reason).

    Width and height are as the picture is shown (EXIF rotation applied); no pixel
    is decoded, so a truncated file passes here and is reported when embedded.
    """
    info: dict[str, Any] = {"size": None, "width": None, "height": None}
    try:
        info["size"] = os.path.getsize(path)
    except OSError as exc:
        return info, f"could not be read ({exc.strerror or exc})"
    if info["size"] == 0:
        return info, "empty file (0 bytes)"
    try:
        width, height = header_size(path)
    except ImageError as exc:
        reason = str(exc)
        return info, UNKNOWN_FORMAT if reason == "not an image Pillow can read" else reason
    except OSError as exc:
        return info, f"could not be read ({exc.strerror or exc})"
    if width == 0 or height == 0:
        return info, "image has no pixels"
    info["width"], info["height"] = width, height
    return info, None


def _skipped_table(root: str, paths: list[str], info: list[dict],
                   reasons: list[str]) -> Optional[Table]:
    """The skipped files in the image layout (no class), with a ``reason`` meta."""
    if not paths:
        return None
    return with_reasons(image_table(paths, root, info), reasons, keep_class=False)


def run_import(root: str, state, workers: int = 2) -> ImportResult:
    """Scan ``root``, read each image's header once, and build both output tables.

    ``state`` is Orange's TaskState (or anything with ``set_status``,
    ``set_progress_value`` and ``is_interruption_requested``); raises
    core.local_embedder.Cancelled when interruption is requested.
    """
    root = os.path.abspath(root)
    stop = state.is_interruption_requested
    state.set_status("Listing files…")
    scan = scan_folder(root, stop,
                       lambda n: state.set_status(f"Listing files… {n:,} found"))
    state.set_progress_value(5)
    paths, info, bad_paths, bad_info, reasons = [], [], [], [], []
    # files of other extensions are read too: an image is known by its contents
    others = frozenset(scan.others)
    candidates = sorted(scan.images + scan.others, key=_sort_key(root))
    total = len(candidates)
    state.set_status(f"Reading {total:,} file headers…")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, total, _CHUNK):
            if stop():
                raise Cancelled()
            chunk = candidates[start:start + _CHUNK]
            for path, (facts, reason) in zip(chunk, pool.map(probe_image, chunk), strict=True):
                if reason == UNKNOWN_FORMAT and path in others:
                    ext = os.path.splitext(path)[1]
                    reason = f"not an image file type ({ext or 'no extension'})"
                if reason is None:
                    paths.append(path)
                    info.append(facts)
                else:
                    bad_paths.append(path)
                    bad_info.append(facts)
                    reasons.append(reason)
            state.set_progress_value(5 + 90 * (start + len(chunk)) / total)
    if stop():
        raise Cancelled()
    state.set_status("Building the table…")
    data = image_table(paths, root, info) if paths else None
    if data is not None:
        data.name = os.path.basename(root) or root  # as File names a table by its file
    skipped = _skipped_table(root, bad_paths, bad_info, reasons)
    if skipped is not None:
        skipped.name = "Skipped files"
    state.set_progress_value(100)
    n_classes = len(data.domain.class_var.values) if data is not None and \
        data.domain.class_var is not None else (1 if data is not None else 0)
    return ImportResult(root, data, skipped, len(paths), n_classes, len(bad_paths))


def _plural(n: int, word: str, plural: Optional[str] = None) -> str:
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def summary(result: ImportResult) -> str:
    """One line for people: "1,234 images in 5 classes; 3 skipped"."""
    text = _plural(result.n_images, "image")
    if result.n_classes > 1:
        text += f" in {_plural(result.n_classes, 'class', 'classes')}"
    if result.n_skipped:
        text += f"; {result.n_skipped:,} skipped"
    return text
