"""Listing folders: the one place that decides which entries of a folder are files to
look at. Every path that lists folders (core.images.find_images for the CLI, training,
the cluster runner and the widgets' previews; imports.scan_folder for Import Images)
goes through ``list_folder``, so all of them leave out the same things:

- hidden files and folders (".name"), including macOS's ".DS_Store" and its "._name"
  AppleDouble files, and the "__MACOSX" folder of zip archives;
- what other systems put beside pictures: Windows' "Thumbs.db", "ehthumbs.db" and
  "desktop.ini", macOS's custom-icon file "Icon\\r", Windows' recycle bin and "System
  Volume Information" folders on USB sticks;
- everything that is not a regular file or a folder (named pipes, sockets, devices):
  only stat()ed, never opened, since opening a named pipe waits forever for a writer.
"""
from __future__ import annotations

import os
import stat
from typing import NamedTuple

__all__ = ["SYSTEM_FILES", "is_hidden", "is_regular_file", "list_folder", "FolderListing"]

#: names (case-insensitive) that operating systems create beside people's files
SYSTEM_FILES = frozenset({"thumbs.db", "ehthumbs.db", "ehthumbs_vista.db", "desktop.ini",
                          "icon\r", "$recycle.bin", "system volume information"})


def is_hidden(name: str) -> bool:
    """A hidden or system entry that is never an image of the user's: dot files (also
    .DS_Store and "._" AppleDouble files), __MACOSX, Thumbs.db, desktop.ini, "Icon\\r"."""
    return (name.startswith(".") or name.startswith("__MACOSX")
            or name.casefold() in SYSTEM_FILES)


def is_regular_file(path: "str | os.PathLike") -> bool:
    """Whether ``path`` is a regular file (symlinks followed), found with stat(), without
    opening it: False for named pipes, sockets, devices, folders and missing paths."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


class FolderListing(NamedTuple):
    """A folder's visible subfolders and regular files (full paths, unsorted)."""

    folders: list
    files: list


def list_folder(folder: "str | os.PathLike") -> FolderListing:
    """The subfolders and regular files directly in ``folder``, hidden and system entries
    and non-regular files left out (see the module's docstring). Raises OSError when the
    folder itself cannot be listed; an entry that cannot be stat()ed is left out."""
    folders, files = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if is_hidden(entry.name):
                continue
            try:
                if entry.is_dir():
                    folders.append(entry.path)
                elif entry.is_file():  # stat() only: a FIFO or socket is neither
                    files.append(entry.path)
            except OSError:
                continue
    return FolderListing(folders, files)
