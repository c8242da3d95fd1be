"""Writing `deepimage embed`'s vectors: CSV (to a file or stdout), an Orange .tab, .npy.

- Text is UTF-8 with "\\r\\n" rows from the csv module and no newline translation, to a
  file and to stdout alike (on Windows stdout would otherwise be cp1252 and turn each
  row end into "\\r\\r\\n"), also when stdout is redirected to a file.
- File names that are not valid UTF-8 (Latin-1 "caf\\xe9.jpg", held by Python with
  surrogate escapes) are written with the odd bytes as ``\\xNN`` (core.portable.
  printable_path), since a UTF-8 file cannot hold them.
- A file is written whole or not at all (core.atomic); when it cannot be written (a
  full disk, a folder that is not there, on Windows a file open in another program),
  the vectors already computed are not lost: they go to a CSV beside it, or in the
  temporary folder, and the error says where.
"""
from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
from typing import Sequence, TextIO

from ..core.atomic import atomic_path, remove_quietly
from ..core.portable import printable_path

__all__ = ["OutputNotWritten", "write_output", "write_csv", "csv_to_stdout"]


class OutputNotWritten(Exception):
    """The output could not be written; ``str()`` says why and where the vectors are."""


def write_csv(stream: TextIO, result, sources: Sequence[str]) -> None:
    """Rows ``image, n0, n1, ...``; ``stream`` must be opened with newline=""."""
    writer = csv.writer(stream)
    writer.writerow(["image"] + [f"n{i}" for i in range(result.dim)])
    for index, vector in zip(result.indices, result.embeddings):
        writer.writerow([printable_path(sources[index])] + [f"{v:.7g}" for v in vector])


def csv_to_stdout(result, sources: Sequence[str], stdout: "TextIO | None" = None) -> None:
    """The CSV on stdout as UTF-8 bytes with the csv module's row ends, whatever the
    console's encoding and newline translation (Windows: cp1252 and "\\r\\n")."""
    stdout = stdout or sys.stdout
    buffer = getattr(stdout, "buffer", None)
    if buffer is None:  # a stream without bytes underneath (tests' StringIO)
        write_csv(stdout, result, sources)
        return
    stdout.flush()
    text = io.TextIOWrapper(buffer, encoding="utf-8", newline="", write_through=True)
    try:
        write_csv(text, result, sources)
        text.flush()
    finally:
        text.detach()  # leave sys.stdout's own buffer open


def _write_file(path: str, result, sources: Sequence[str]) -> None:
    import numpy as np
    suffix = os.path.splitext(path)[1].lower()
    with atomic_path(path, suffix) as tmp:
        if suffix == ".csv":
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                write_csv(f, result, sources)
        elif suffix == ".npy":
            np.save(tmp, result.embeddings)
        elif suffix == ".tab":
            from ..core.images import describe
            from ..data import embeddings_table, image_table
            info = [describe(s) for s in sources]  # read under the real names
            table = image_table([printable_path(s) for s in sources], info=info)
            embedded, _ = embeddings_table(table, result)
            embedded.save(tmp)
        else:
            raise ValueError(f"unknown output format {suffix!r}")


def _rescue(path: str, result, sources: Sequence[str]) -> "str | None":
    """Keep the vectors as CSV (else .npy) beside ``path``, else in the temporary
    folder; returns where, or None when nothing could be written anywhere."""
    import numpy as np

    def as_csv(f):
        with open(f, "w", newline="", encoding="utf-8") as stream:
            write_csv(stream, result, sources)

    stem = os.path.splitext(os.path.basename(path))[0] or "embeddings"
    for folder in (os.path.dirname(os.path.abspath(path)), tempfile.gettempdir()):
        for suffix, write in ((".csv", as_csv), (".npy", lambda f: np.save(f, result.embeddings))):
            try:
                handle, rescue = tempfile.mkstemp(prefix=f"{stem}-unsaved-", suffix=suffix,
                                                  dir=folder)
                os.close(handle)
            except OSError:
                break  # this folder cannot be written at all
            try:
                write(rescue)
                return rescue
            except Exception:
                remove_quietly(rescue)
    return None


def write_output(path: "str | None", result, sources: Sequence[str]) -> None:
    """Write the vectors to ``path`` (.csv, .tab, .npy; None or "-": CSV on stdout).

    Raises OutputNotWritten when that fails, after keeping the vectors elsewhere."""
    if path is None or path == "-":
        csv_to_stdout(result, sources)
        return
    try:
        _write_file(path, result, sources)
    except Exception as exc:  # whatever failed, the vectors must survive it
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        rescue = _rescue(path, result, sources)
        where = (f"the {len(result.indices)} vectors are in {rescue}" if rescue else
                 "the vectors could not be written anywhere either")
        raise OutputNotWritten(f"could not write {path} ({type(exc).__name__}: {why}); "
                               f"{where}") from exc
