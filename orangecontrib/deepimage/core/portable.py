"""What differs between Windows, macOS and Linux in names and text files, in one place.

- ``safe_file_name``: every file name made from data (an image's own name, a class
  value) goes through it, so what one computer writes, another can copy: no characters
  or names that Windows refuses, whatever the system writing them.
- ``read_text``: small text files people write by hand (access tokens) in whatever
  encoding their editor chose: PowerShell's ``>`` and ``Out-File`` write UTF-16 with a
  byte order mark, Notepad writes UTF-8 with one.
- ``printable_path``: a file name that is not valid UTF-8 (Latin-1 "caf\\xe9.jpg" from
  an old camera or a zip file, which Python holds with surrogate escapes) written to a
  UTF-8 file or terminal, with the odd bytes shown as ``\\xe9``.
"""
from __future__ import annotations

import codecs
import os
import re

__all__ = ["WINDOWS_RESERVED", "safe_file_name", "read_text", "printable_path"]

#: device names Windows refuses as file names, with any extension ("nul.txt", "Con.png")
WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                              *(f"COM{i}" for i in "123456789¹²³"),
                              *(f"LPT{i}" for i in "123456789¹²³")})
_REFUSED = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_MAX_LENGTH = 200  # characters; leaves room for "-2", an extension, and a folder's path


def safe_file_name(name: str, fallback: str = "") -> str:
    """``name`` as a file name every system accepts: ``<>:"/\\|?*`` and control characters
    become "_", trailing dots and spaces (which Windows drops) and surrounding spaces go,
    device names (CON, PRN, AUX, NUL, COM1-9, LPT1-9, also with an extension) get a "_"
    in front, and names over 200 characters are shortened. ``fallback`` when nothing is
    left (``""``, ``"."``, ``".."``)."""
    name = _REFUSED.sub("_", str(name)).strip().rstrip(". ")
    if name in ("", ".", ".."):
        return fallback
    if name.split(".", 1)[0].rstrip(" ").upper() in WINDOWS_RESERVED:
        name = "_" + name
    return name[:_MAX_LENGTH].rstrip(". ") or fallback


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


def read_text(path: "str | os.PathLike") -> str:
    """The text of a small file written by any editor or shell: UTF-8 (with or without
    Notepad's byte order mark), or UTF-16/32 with a byte order mark (PowerShell). Raises
    OSError when the file cannot be read, UnicodeError (a ValueError) when it is none of
    these."""
    with open(path, "rb") as f:
        data = f.read()
    for bom, encoding in _BOMS:  # UTF-32 LE before UTF-16 LE: its mark starts the same
        if data.startswith(bom):
            return data.decode(encoding)
    return data.decode("utf-8")


def printable_path(path: str) -> str:
    """``path`` as text that any UTF-8 writer accepts: bytes that were not UTF-8 in the
    file name (held as surrogate escapes) are written as ``\\xNN``; other names are
    unchanged."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
