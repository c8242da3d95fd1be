"""The embedding cache where it cannot work as usual (issue 21, item 10): on a network
home folder SQLite's WAL mode fails, and on Windows a damaged cache cannot be moved
aside while another program holds it. Embedding goes on without the cache, with one
warning, and never fails. The failures are simulated: a connection class that raises
as SQLite does there, and os.replace raising PermissionError as Windows does."""
import logging
import os
import sqlite3

import numpy as np
import pytest

from orangecontrib.deepimage.core import cache as cache_module
from orangecontrib.deepimage.core.cache import EmbeddingCache
from orangecontrib.deepimage.core.local_embedder import Embedder


class FlakyConnection(sqlite3.Connection):
    """Raises ``failure`` for statements containing ``when`` (class-level switches)."""

    failure: "Exception | None" = None
    when = ""

    def execute(self, sql, *args):
        if FlakyConnection.failure is not None and FlakyConnection.when in sql:
            raise FlakyConnection.failure
        return super().execute(sql, *args)

    def executemany(self, sql, *args):
        if FlakyConnection.failure is not None and FlakyConnection.when in sql:
            raise FlakyConnection.failure
        return super().executemany(sql, *args)


@pytest.fixture
def flaky(monkeypatch):
    """fail(error, when): make the cache's SQLite statements containing ``when`` raise."""
    connect = sqlite3.connect
    monkeypatch.setattr(cache_module.sqlite3, "connect",
                        lambda *a, **k: connect(*a, factory=FlakyConnection, **k))

    def fail(error, when=""):
        FlakyConnection.failure, FlakyConnection.when = error, when

    yield fail
    fail(None)


def warnings_of(caplog):
    return [r for r in caplog.records
            if r.name == cache_module.__name__ and r.levelno >= logging.WARNING]


def test_wal_failing_falls_back_to_a_rollback_journal(tmp_path, flaky, caplog):
    flaky(sqlite3.OperationalError("disk I/O error"), "journal_mode=WAL")
    with EmbeddingCache(tmp_path / "emb.sqlite") as cache:
        cache.put_many("m", [("h", np.ones(4, np.float32))])
        assert np.array_equal(cache.get("m", "h"), np.ones(4))
        assert cache._db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not warnings_of(caplog)


def test_disk_errors_mid_run_leave_the_cache_with_one_warning(tmp_path, flaky, caplog):
    cache = EmbeddingCache(tmp_path / "emb.sqlite")
    cache.put_many("m", [("h", np.ones(4, np.float32))])
    flaky(sqlite3.OperationalError("disk I/O error"))
    for _ in range(3):
        assert cache.get_many("m", ["h"]) == {}
        cache.put_many("m", [("g", np.ones(4, np.float32))])
    assert len(cache) == 0
    cache.close()
    assert len(warnings_of(caplog)) == 1
    assert "goes on without it" in warnings_of(caplog)[0].getMessage()


def test_a_damaged_cache_held_open_elsewhere_is_left_with_one_warning(
        tmp_path, flaky, monkeypatch, caplog):
    path = tmp_path / "emb.sqlite"
    cache = EmbeddingCache(path)
    cache.put_many("m", [("h", np.ones(4, np.float32))])
    flaky(sqlite3.DatabaseError("database disk image is malformed"), "SELECT")

    def held(*args):
        raise PermissionError(32, "The process cannot access the file because it is being "
                                  "used by another process")

    monkeypatch.setattr(os, "replace", held)
    for _ in range(3):
        assert cache.get_many("m", ["h"]) == {}
        cache.put_many("m", [("g", np.ones(4, np.float32))])
    cache.close()
    assert path.exists() and not (tmp_path / "emb.sqlite.corrupt").exists()
    assert len(warnings_of(caplog)) == 1
    assert "could not be moved aside" in warnings_of(caplog)[0].getMessage()


def test_a_damaged_cache_that_cannot_be_moved_does_not_stop_opening(tmp_path, monkeypatch,
                                                                    caplog):
    path = tmp_path / "emb.sqlite"
    path.write_bytes(b"definitely not sqlite" * 200)
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(PermissionError(13, "")))
    with EmbeddingCache(path) as cache:
        assert cache.get_many("m", ["h"]) == {} and len(cache) == 0
    assert len(warnings_of(caplog)) == 1


def test_embedding_goes_on_when_the_cache_fails_mid_run(tmp_path, photo_dir, flaky, caplog):
    cache = EmbeddingCache(tmp_path / "emb.sqlite")
    flaky(sqlite3.OperationalError("disk I/O error"))
    sources = sorted(str(p) for p in (photo_dir / "cats").glob("cats*.jpg"))
    result = Embedder("squeezenet", backend="torch", cache=cache).embed(sources)
    assert len(result.indices) == 3 and result.embeddings.shape == (3, 512)
    assert len(warnings_of(caplog)) == 1
