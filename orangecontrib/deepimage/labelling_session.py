"""The state of a labelling session (Label Images), without Qt: labels keyed by image.

A label belongs to an image, not to a row: it is stored under the image's content hash
(so it follows a file that was moved or renamed) and its path relative to the image
column's origin (so it survives an edit of the file). Re-running Import Images on a
grown folder, or re-embedding with another network, keeps every label. Labels of images
that are no longer in the data are kept too ("orphans"): they come back with the images.

Every change (label, unlabel, add, rename, merge or remove a class) is one step of an
undo stack that stores what it replaced, so no label is ever lost. The session is
saved with the workflow as a plain dict (:meth:`LabelSession.to_settings`).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Optional, Protocol, Sequence

import numpy as np
from Orange.data import Table

from .core.cache import content_hash
from .core.cancel import Cancelled
from .core.images import ImageError, read_bytes
from .data import image_column, image_paths, image_values

__all__ = ["RowKeys", "LabelSession", "SessionError", "image_keys", "SETTINGS_VERSION"]

#: the layout of :meth:`LabelSession.to_settings`
SETTINGS_VERSION = 1
#: how many numbers of an embedding are kept to recognise the network later
PROBE_LENGTH = 16


class SessionError(ValueError):
    """A change the session refuses (an empty or taken class name, ...): say why."""


class State(Protocol):
    def set_progress_value(self, value: float) -> None: ...
    def is_interruption_requested(self) -> bool: ...


@dataclass(frozen=True)
class RowKeys:
    """What identifies each row's image: its path relative to the origin ("/"), and the
    hash of its content ("" when the file cannot be read)."""

    paths: tuple
    hashes: tuple

    def __len__(self) -> int:
        return len(self.paths)

    def key(self, row: int) -> str:
        """The key a label of this row is stored under."""
        return self.hashes[row] or "path:" + self.paths[row]


def _hash_of(path: str) -> str:
    try:
        return content_hash(read_bytes(path))
    except (ImageError, OSError):
        return ""


def image_keys(table: Table, column=None, state: Optional[State] = None) -> RowKeys:
    """The keys of ``table``'s images (reads every file: run it in a worker)."""
    column = column or image_column(table)
    if column is None:
        raise ValueError("The data has no image column (a text column with type=image).")
    relative = image_values(table, column)
    absolute = image_paths(table, column)
    hashes = []
    for i, path in enumerate(absolute):
        if state is not None:
            if state.is_interruption_requested():
                raise Cancelled()
            if i % 200 == 0:
                state.set_progress_value(100 * i / max(len(absolute), 1))
        hashes.append(_hash_of(path))
    return RowKeys(tuple(relative), tuple(hashes))


@dataclass
class _Step:
    """One undoable change: the classes and the records as they were before it."""

    description: str
    classes: list
    records: dict  # key -> (path, label), or None where there was no record
    extra: dict = field(default_factory=dict)


class LabelSession:
    """Classes and labels of a session; bound to a table's rows with :meth:`attach`."""

    def __init__(self, classes: Iterable[str] = (), records: Optional[dict] = None):
        self.classes: list[str] = list(classes)
        #: key (content hash, or "path:<path>") -> (path, label)
        self.records: dict[str, tuple[str, str]] = dict(records or {})
        self.keys: Optional[RowKeys] = None
        self._keys_list: list = []
        self._matched: Optional[list] = None
        self.network: dict = {}  # what embedded the images when labels were last given
        self.seeded = False  # labels were taken from the input's class column
        self._undo: list[_Step] = []
        self._row_labels: Optional[list] = None
        self._path_index: Optional[dict] = None

    # --- binding to rows -----------------------------------------------------------
    def attach(self, keys: Optional[RowKeys]) -> None:
        """Bind the session to the rows these keys describe (None: no data)."""
        self.keys = keys
        self._keys_list = [] if keys is None else \
            [h or "path:" + p for h, p in zip(keys.hashes, keys.paths)]
        self._invalidate()

    def _invalidate(self) -> None:
        self._row_labels = None
        self._path_index = None
        self._matched = None

    def _match(self) -> list:
        """Per row, the key of the record that labels it (by content, else by path) or
        None; one pass over the rows, cached until the next change."""
        if self._matched is None:
            records = self.records
            if self._path_index is None:
                self._path_index = {path: k for k, (path, _) in records.items()}
            by_path = self._path_index
            paths = self.keys.paths if self.keys is not None else ()
            self._matched = [key if key in records else by_path.get(path)
                             for key, path in zip(self._keys_list, paths)]
        return self._matched

    def _record_key(self, row: int) -> Optional[str]:
        """The key of the record that labels ``row``: by content, else by path."""
        return self._match()[row]

    def row_labels(self) -> list:
        """The label of each attached row (None: unlabelled)."""
        if self._row_labels is None:
            records = self.records
            self._row_labels = [None if key is None else records[key][1]
                                for key in self._match()]
        return self._row_labels

    def label_indices(self) -> np.ndarray:
        """Each row's class as an index into ``classes`` (-1: unlabelled)."""
        index = {name: i for i, name in enumerate(self.classes)}
        return np.array([-1 if label is None else index.get(label, -1)
                         for label in self.row_labels()], dtype=int)

    def orphans(self) -> int:
        """How many labels are for images that are not among the attached rows."""
        if self.keys is None:
            return len(self.records)
        return len(self.records.keys() - set(self._match()))

    def counts(self) -> dict:
        """Labelled rows per class, in the order of ``classes``."""
        counts = dict.fromkeys(self.classes, 0)
        counts.update(Counter(label for label in self.row_labels() if label is not None))
        return counts

    # --- changes (each one undoable) -------------------------------------------------
    def _begin(self, description: str, keys: Iterable[str] = ()) -> _Step:
        step = _Step(description, list(self.classes),
                     {key: self.records.get(key) for key in keys})
        self._undo.append(step)
        return step

    def _set(self, step: _Step, key: str, value: Optional[tuple]) -> None:
        if key not in step.records:
            step.records[key] = self.records.get(key)
        if value is None:
            self.records.pop(key, None)
        else:
            self.records[key] = value

    def _rows(self, rows: Sequence[int]) -> list[int]:
        if self.keys is None:
            raise SessionError("There are no images to label.")
        rows = sorted({int(r) for r in rows})
        if rows and (rows[0] < 0 or rows[-1] >= len(self.keys)):
            raise SessionError(f"No row {rows[-1]}: the data has {len(self.keys)} rows.")
        return rows

    def assign(self, rows: Sequence[int], label: str) -> int:
        """Label ``rows`` as ``label`` (added as a class if new); returns how many changed."""
        rows = self._rows(rows)
        label = self._clean(label, new=False)
        current = self.row_labels()
        changed = [row for row in rows if current[row] != label]
        if not changed and label in self.classes:
            return 0
        step = self._begin(f"label {len(changed)} as {label}")
        if label not in self.classes:
            self.classes.append(label)
        for row in changed:
            old = self._record_key(row)
            if old is not None and old != self.keys.key(row):
                self._set(step, old, None)  # found by path: stored again under its content
            self._set(step, self.keys.key(row), (self.keys.paths[row], label))
        self._invalidate()
        return len(changed)

    def unlabel(self, rows: Sequence[int]) -> int:
        """Remove the labels of ``rows`` (undoable); returns how many were labelled."""
        rows = [row for row in self._rows(rows) if self._record_key(row) is not None]
        if not rows:
            return 0
        step = self._begin(f"unlabel {len(rows)}")
        for row in rows:
            self._set(step, self._record_key(row), None)
        self._invalidate()
        return len(rows)

    def _clean(self, name: str, new: bool) -> str:
        name = str(name).strip()
        if not name:
            raise SessionError("A class needs a name.")
        if new and name in self.classes:
            raise SessionError(f"There is a class '{name}' already.")
        return name

    def add_class(self, name: str) -> str:
        """Add an empty class; returns its (stripped) name."""
        name = self._clean(name, new=True)
        self._begin(f"add class {name}")
        self.classes.append(name)
        return name

    def rename_class(self, old: str, new: str) -> None:
        """Rename a class and its labels (to join two classes, merge them)."""
        if old not in self.classes:
            raise SessionError(f"There is no class '{old}'.")
        new = str(new).strip()
        if new in self.classes and new != old:
            raise SessionError(f"There is a class '{new}' already: merge '{old}' into it.")
        new = self._clean(new, new=False)
        step = self._begin(f"rename {old} to {new}")
        self.classes[self.classes.index(old)] = new
        self._relabel(step, {old}, new)

    def merge_classes(self, sources: Iterable[str], target: str) -> int:
        """Move the labels of ``sources`` into ``target`` (kept, or added at the first
        source's place); returns how many labels moved."""
        sources = [s for s in dict.fromkeys(sources) if s != target]
        missing = [s for s in sources if s not in self.classes]
        if missing or not sources:
            raise SessionError(f"There is no class '{missing[0]}'." if missing else
                               "Choose at least one other class to merge.")
        target = self._clean(target, new=False)
        step = self._begin(f"merge {', '.join(sources)} into {target}")
        if target not in self.classes:
            self.classes[self.classes.index(sources[0])] = target
        self.classes = [c for c in self.classes if c not in sources]
        return self._relabel(step, set(sources), target)

    def remove_class(self, name: str) -> None:
        """Remove a class that has no labels (one with labels is merged, not removed)."""
        if name not in self.classes:
            raise SessionError(f"There is no class '{name}'.")
        used = sum(1 for _, label in self.records.values() if label == name)
        if used:
            raise SessionError(f"'{name}' labels {used} images: merge it into another class "
                               "or unlabel them first.")
        self._begin(f"remove class {name}")
        self.classes.remove(name)

    def _relabel(self, step: _Step, sources: set, target: str) -> int:
        moved = [key for key, (_, label) in self.records.items() if label in sources]
        for key in moved:
            self._set(step, key, (self.records[key][0], target))
        self._invalidate()
        return len(moved)

    def seed_from(self, values: Sequence[Optional[str]], classes: Sequence[str]) -> int:
        """Start from an existing class column (once, and only into an empty session):
        ``values`` per attached row (None: no class). Returns how many rows it labelled."""
        if self.seeded or self.records or self.keys is None:
            return 0
        self.seeded = True
        step = self._begin("labels from the class column")
        self.classes += [c for c in classes if c not in self.classes]
        for row, value in enumerate(values):
            if value is not None:
                self._set(step, self.keys.key(row), (self.keys.paths[row], value))
        self._invalidate()
        return sum(v is not None for v in values)

    # --- undo ----------------------------------------------------------------------
    def can_undo(self) -> bool:
        return bool(self._undo)

    def undo_text(self) -> str:
        """What Undo would undo ("" when nothing)."""
        return self._undo[-1].description if self._undo else ""

    def undo(self) -> str:
        """Undo the last change; returns its description ("" when there was none)."""
        if not self._undo:
            return ""
        step = self._undo.pop()
        self.classes = step.classes
        for key, value in step.records.items():
            if value is None:
                self.records.pop(key, None)
            else:
                self.records[key] = value
        self._invalidate()
        return step.description

    # --- the network that embedded the images ---------------------------------------
    def remember_network(self, embeddings: np.ndarray, name: str = "") -> None:
        """Note which embeddings the labels were given on (dimension, name, and the first
        numbers of a few labelled images' vectors)."""
        if self.keys is None or embeddings is None:
            return
        labelled = [row for row, label in enumerate(self.row_labels())
                    if label is not None and self.keys.hashes[row]
                    and np.isfinite(embeddings[row]).all()][:3]
        self.network = {"dim": int(embeddings.shape[1]), "name": name,
                        "probes": [[self.keys.hashes[row],
                                    [float(v) for v in embeddings[row, :PROBE_LENGTH]]]
                                   for row in labelled]}

    def network_change(self, embeddings: np.ndarray, name: str = "") -> str:
        """A message when ``embeddings`` come from another network than the one the
        labels were given on ("" when the same, or unknown)."""
        known = self.network
        if not known or self.keys is None or embeddings is None:
            return ""
        then = known.get("name") or f"{known.get('dim')} numbers per image"
        now = name or f"{embeddings.shape[1]} numbers per image"
        if known.get("dim") != embeddings.shape[1]:
            return self._change_message(then, now)
        rows = {h: row for row, h in enumerate(self.keys.hashes) if h}
        for digest, probe in known.get("probes", ()):
            row = rows.get(digest)
            if row is not None:
                now_values = embeddings[row, :len(probe)].astype(float)
                if np.isfinite(now_values).all() and \
                        not np.allclose(now_values, probe, rtol=1e-3, atol=1e-4):
                    return self._change_message(then, now if name else "another network")
        return ""

    @staticmethod
    def _change_message(then: str, now: str) -> str:
        return (f"The labels were given on embeddings of {then}, the images now come with "
                f"{now}. The labels still belong to the same images; predictions and "
                "suggestions now use the new embeddings.")

    # --- settings ------------------------------------------------------------------
    def to_settings(self) -> dict:
        """A plain dict for the workflow (the undo stack is not saved)."""
        return {"version": SETTINGS_VERSION, "classes": list(self.classes),
                "labels": [[path, "" if key.startswith("path:") else key, label]
                           for key, (path, label) in self.records.items()],
                "network": dict(self.network), "seeded": self.seeded}

    @classmethod
    def from_settings(cls, settings: Optional[dict]) -> "LabelSession":
        """The session :meth:`to_settings` saved (an empty one for None or {})."""
        settings = settings or {}
        version = settings.get("version", SETTINGS_VERSION)
        if version > SETTINGS_VERSION:
            raise SessionError(f"These labels were saved by a newer version of the add-on "
                               f"(layout {version}); update it to open them.")
        records = {(digest or "path:" + path): (path, label)
                   for path, digest, label in settings.get("labels", ())}
        classes = list(settings.get("classes", ()))
        classes += sorted({label for _, label in records.values()} - set(classes))
        session = cls(classes, records)
        session.network = dict(settings.get("network") or {})
        session.seeded = bool(settings.get("seeded", False))
        return session
