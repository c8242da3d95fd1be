"""Writing a file so that readers see the old file or the whole new one, never half of
it, and an interrupted or failed write leaves no ``.part`` file behind.

The new contents go to a temporary sibling (same folder, so the final os.replace is a
rename on one file system); on success it replaces the target, on any failure, Ctrl+C
included, the temporary file is removed and the error raised. On Windows os.replace
raises PermissionError while another program holds the target open (an antivirus, a
spreadsheet showing the CSV): the caller decides what then, but no ``.part`` stays.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator

__all__ = ["atomic_path", "remove_quietly"]


def remove_quietly(path: "str | os.PathLike") -> None:
    """Delete ``path`` if it is there; a file that cannot be deleted is left."""
    with contextlib.suppress(OSError):
        os.unlink(path)


@contextlib.contextmanager
def atomic_path(path: "str | os.PathLike", suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside ``path`` (ending ``.part`` + ``suffix``, for writers
    such as numpy.save that want an extension); when the block ends normally it replaces
    ``path``. On any exception, the temporary file is removed and the exception raised."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.",
                                         suffix=".part" + suffix, dir=folder)
    os.close(handle)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        remove_quietly(temporary)
        raise
