"""The pixel classifier's file: one skops archive (a zip of JSON and numpy arrays).

A colleague's file is untrusted: before anything is built from it, every type it
names is checked against TRUSTED (a random forest, its trees, numpy arrays and
scalars), and skops builds only those; nothing is unpickled and no code in the file
runs. A file that is not ours, from another format version, or damaged is refused
with a SegmenterFileError that names the file and says why.
"""
from __future__ import annotations

import os
import zipfile

__all__ = ["SegmenterFileError", "FORMAT", "FORMAT_VERSION", "TRUSTED", "write_classifier_file",
           "read_classifier_file"]

FORMAT = "orange3-deepimage-pixel-classifier"
FORMAT_VERSION = 1
_KEYS = {"format", "version", "features", "channels", "classes", "class_names", "forest", "projection"}

#: the only types a classifier file may hold besides builtins (dict, list, str, int ...)
TRUSTED = frozenset({
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
    "numpy.ndarray", "numpy.dtype", "numpy.float64", "numpy.float32", "numpy.int64",
    "numpy.intp", "numpy.uint8",
})


class SegmenterFileError(ValueError):
    """A classifier file that is not ours, is from another version, or is damaged."""


def write_classifier_file(content: dict, path: "str | os.PathLike") -> None:
    """Write ``content`` (the classifier's fields, FORMAT and FORMAT_VERSION added)."""
    import skops.io

    skops.io.dump({"format": FORMAT, "version": FORMAT_VERSION, **content}, os.fspath(path))


_BUILTINS = frozenset(f"builtins.{name}" for name in
                     ("dict", "list", "tuple", "str", "int", "float", "bool", "NoneType"))


def _collect(node, found: set) -> None:
    if isinstance(node, dict):
        if "__class__" in node:
            found.add(f"{node.get('__module__')}.{node['__class__']}")
        for value in node.values():
            _collect(value, found)
    elif isinstance(node, list):
        for value in node:
            _collect(value, found)


def _untrusted(path: str) -> list[str]:
    """Types the file's schema names that a classifier file never holds (read from
    its JSON, before skops builds anything; skops's own list trusts more)."""
    import json

    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise SegmenterFileError(f"{path} is not a pixel classifier file of Orange3-DeepImage "
                                 f"({type(exc).__name__}: {exc})") from None
    found: set[str] = set()
    _collect(schema, found)
    return sorted(found - TRUSTED - _BUILTINS)


def read_classifier_file(path: "str | os.PathLike") -> dict:
    """The fields of a classifier file, after the checks in the module doc."""
    import skops.io

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SegmenterFileError(f"{path}: no such classifier file")
    if not zipfile.is_zipfile(path):
        raise SegmenterFileError(f"{path} is not a pixel classifier file of Orange3-DeepImage "
                                 f"(not a skops archive; pickles are never loaded)")
    foreign = _untrusted(path)
    if foreign:
        raise SegmenterFileError(f"{path} holds types a pixel classifier never has "
                                 f"({', '.join(sorted(foreign)[:5])}); it was not loaded")
    try:
        content = skops.io.load(path, trusted=sorted(TRUSTED - _BUILTINS))
    except Exception as exc:  # skops raises many kinds for damaged archives
        raise SegmenterFileError(f"{path} could not be read as a pixel classifier "
                                 f"({type(exc).__name__}: {exc})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise SegmenterFileError(f"{path} is a skops file but not a pixel classifier of "
                                 f"Orange3-DeepImage")
    if content.get("version") != FORMAT_VERSION:
        raise SegmenterFileError(f"{path} is a pixel classifier of format version "
                                 f"{content.get('version')!r}; this Orange3-DeepImage reads "
                                 f"version {FORMAT_VERSION}: train it again here")
    missing = _KEYS - set(content)
    if missing:
        raise SegmenterFileError(f"{path} lacks {', '.join(sorted(missing))}")
    from sklearn.ensemble import RandomForestClassifier
    if not isinstance(content["forest"], RandomForestClassifier):
        raise SegmenterFileError(f"{path} holds no random forest")
    return content
