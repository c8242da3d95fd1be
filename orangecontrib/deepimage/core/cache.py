"""A persistent embedding cache.

Keyed by the hash of a file's bytes plus the network and its weights'
identity, so a renamed or copied file is still a hit and new weights never
return stale vectors. It is an SQLite database: a crash mid-write leaves the
last committed state (SQLite's journal), and a database that is corrupt anyway
(a disk error, a truncated copy) is moved aside and rebuilt, never trusted.

A cache that cannot work where it is (WAL mode on a network home folder, a damaged
file that Windows will not let us move while another program holds it, disk I/O
errors) is never a reason to fail: WAL falls back to SQLite's rollback journal, and
otherwise embedding goes on without the cache, with one warning.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Iterable

import numpy as np

__all__ = ["EmbeddingCache", "default_cache_dir", "content_hash"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL,
    content TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, content)
) WITHOUT ROWID
"""


def default_cache_dir() -> Path:
    """$DEEPIMAGE_CACHE_DIR, else the platform's per-user cache folder."""
    if os.environ.get("DEEPIMAGE_CACHE_DIR"):
        return Path(os.environ["DEEPIMAGE_CACHE_DIR"]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "orange3-deepimage"


def content_hash(data: bytes) -> str:
    """The cache's key for a file: a BLAKE2b digest of its bytes."""
    return hashlib.blake2b(data, digest_size=20).hexdigest()


class EmbeddingCache:
    """Embeddings by (model key, content hash); safe to use from several threads."""

    def __init__(self, path: "str | os.PathLike | None" = None):
        self.path = Path(path) if path is not None else default_cache_dir() / "embeddings.sqlite"
        self._lock = threading.Lock()
        self._warned = False  # a failure is logged once per cache, not per batch
        self._wal = True
        self._db = self._open()

    def _connect(self, wal: bool = True) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        try:
            # WAL needs shared memory beside the file, which network folders lack: there
            # the rollback journal (SQLite's default, safe on them) is used instead
            db.execute(f"PRAGMA journal_mode={'WAL' if wal else 'DELETE'}")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            db.commit()
        except BaseException:
            db.close()
            raise
        return db

    def _open(self) -> "sqlite3.Connection | None":
        try:
            return self._open_checked()
        except sqlite3.OperationalError as exc:
            log.info("Embedding cache %s: WAL mode failed (%s); using a rollback journal",
                     self.path, exc)
        self._wal = False
        return self._open_checked()  # OperationalError (permissions ...): the caller decides

    def _open_checked(self) -> "sqlite3.Connection | None":
        """A connection that passed quick_check; a corrupt file is rebuilt."""
        try:
            db = self._connect(self._wal)
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:  # not a database at all
            return self._rebuild(exc)
        try:
            if db.execute("PRAGMA quick_check").fetchone()[0] == "ok":
                return db
            reason = sqlite3.DatabaseError("quick_check failed")
        except sqlite3.OperationalError:
            db.close()
            raise
        except sqlite3.DatabaseError as exc:
            reason = exc
        db.close()  # before moving the file aside (Windows keeps open files)
        return self._rebuild(reason)

    def _rebuild(self, reason: Exception) -> "sqlite3.Connection | None":
        """Move a corrupt database aside and start an empty one; when it cannot be moved
        (on Windows while another program holds it) go on without a cache (None)."""
        if getattr(self, "_db", None) is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        aside = self.path.with_name(self.path.name + ".corrupt")
        try:
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.replace(str(self.path) + suffix, str(aside) + suffix)
                except FileNotFoundError:
                    pass
            db = self._connect(self._wal)
        except (OSError, sqlite3.Error) as exc:
            self._give_up(f"it is unreadable ({reason}) and could not be moved aside ({exc})")
            return None
        log.warning("Embedding cache %s was unreadable (%s); moved it to %s and started "
                    "a new one.", self.path, reason, aside)
        return db

    def _give_up(self, why: str) -> None:
        """Go on without the cache for the rest of this run, saying so once."""
        if not self._warned:
            log.warning("Embedding cache %s cannot be used: %s. Embedding goes on without "
                        "it.", self.path, why)
        self._warned = True

    def _guarded(self, work, fallback, failing: "str | None" = None):
        """``work(db)`` under the lock. A corrupt database is rebuilt (-> ``fallback``).
        Locked (OperationalError): logged once, with ``failing`` (-> ``fallback``); other
        OperationalErrors (disk I/O on a network folder) end the cache's use in this run
        (-> ``fallback``). Raised instead when ``failing`` is None."""
        with self._lock:
            if self._db is None:
                return fallback
            try:
                return work(self._db)
            except sqlite3.OperationalError as exc:
                if failing is None:
                    raise
                if "locked" not in str(exc) and "busy" not in str(exc):
                    self._db.close()
                    self._db = None
                    self._give_up(f"it could not be {failing} ({exc})")
                elif not self._warned:
                    self._warned = True
                    log.warning("Embedding cache %s could not be %s: %s", self.path,
                                failing, exc)
            except sqlite3.DatabaseError as exc:
                self._db = self._rebuild(exc)
            return fallback

    def get_many(self, model: str, contents: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``contents``, as {content hash: vector}."""
        contents = list(dict.fromkeys(contents))
        found: dict[str, np.ndarray] = {}

        def read(db):
            for start in range(0, len(contents), 500):
                chunk = contents[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(f"SELECT content, dim, vector FROM embeddings "
                                  f"WHERE model = ? AND content IN ({marks})",
                                  [model, *chunk]).fetchall()
                for content, dim, blob in rows:
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if vector.shape == (dim,):  # else a damaged row: recompute it
                        found[content] = vector
            return found

        return self._guarded(read, found, "read")

    def get(self, model: str, content: str) -> "np.ndarray | None":
        return self.get_many(model, [content]).get(content)

    def put_many(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Store vectors; one transaction, so either all of them land or none."""
        rows = [(model, content, int(v.shape[0]), np.ascontiguousarray(v, np.float32).tobytes())
                for content, v in items]

        def write(db):
            with db:
                db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)", rows)

        if rows:  # when the disk is full or the file locked, only these are lost
            self._guarded(write, None, "written")

    def __len__(self) -> int:
        return self._guarded(
            lambda db: db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0], 0)

    def clear(self, model: "str | None" = None) -> None:
        def delete(db):
            with db:
                if model is None:
                    db.execute("DELETE FROM embeddings")
                else:
                    db.execute("DELETE FROM embeddings WHERE model = ?", (model,))

        self._guarded(delete, None)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()

    def __enter__(self) -> "EmbeddingCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
