"""EmbeddingCache: round trips, persistence, corruption, threads and crashes."""
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from orangecontrib.deepimage.core.cache import EmbeddingCache, content_hash, default_cache_dir

DIM = 16


def vec(i, dim=DIM):
    return np.arange(dim, dtype=np.float32) + np.float32(i)


@pytest.fixture
def cache(tmp_path):
    with EmbeddingCache(tmp_path / "c" / "emb.sqlite") as c:
        yield c


def test_round_trip_and_models_separate(cache):
    items = [(f"h{i}", vec(i)) for i in range(5)]
    cache.put_many("m1", items)
    got = cache.get_many("m1", ["h0", "h3", "absent", "h3"])
    assert sorted(got) == ["h0", "h3"]
    for key, i in (("h0", 0), ("h3", 3)):
        assert got[key].dtype == np.float32 and np.array_equal(got[key], vec(i))
    assert cache.get_many("m2", ["h0", "h1"]) == {}
    assert cache.get("m2", "h0") is None and cache.get("m1", "absent") is None
    cache.put_many("m2", [("h0", vec(100, dim=4))])
    assert np.array_equal(cache.get("m2", "h0"), vec(100, dim=4))
    assert np.array_equal(cache.get("m1", "h0"), vec(0))
    assert len(cache) == 6


def test_put_replaces_and_converts_dtype(cache):
    cache.put_many("m", [("h", vec(1))])
    cache.put_many("m", [("h", np.linspace(0, 1, 8))])   # float64 in, float32 out
    out = cache.get("m", "h")
    assert out.dtype == np.float32 and np.allclose(out, np.linspace(0, 1, 8))
    assert len(cache) == 1
    cache.put_many("m", [])
    assert len(cache) == 1


def test_many_keys_beyond_one_query_chunk(cache):
    cache.put_many("m", [(f"k{i}", vec(i, 3)) for i in range(1200)])
    got = cache.get_many("m", [f"k{i}" for i in range(0, 1300, 1)])
    assert len(got) == 1200
    assert all(np.array_equal(got[f"k{i}"], vec(i, 3)) for i in range(1200))


def test_clear(cache):
    cache.put_many("a", [("x", vec(1)), ("y", vec(2))])
    cache.put_many("b", [("x", vec(3))])
    cache.clear("a")
    assert len(cache) == 1 and cache.get("a", "x") is None
    assert np.array_equal(cache.get("b", "x"), vec(3))
    cache.clear()
    assert len(cache) == 0


def test_persists_across_instances(tmp_path):
    path = tmp_path / "emb.sqlite"
    with EmbeddingCache(path) as first:
        first.put_many("m", [("h", vec(7))])
    with EmbeddingCache(path) as second:
        assert len(second) == 1 and np.array_equal(second.get("m", "h"), vec(7))


def test_damaged_row_is_not_returned(cache):
    cache.put_many("m", [("good", vec(1))])
    raw = sqlite3.connect(cache.path)
    with raw:
        raw.execute("INSERT INTO embeddings VALUES ('m', 'bad', 16, ?)",
                    (np.zeros(5, np.float32).tobytes(),))
    raw.close()
    assert set(cache.get_many("m", ["good", "bad"])) == {"good"}


def make_db(path, n=300):
    with EmbeddingCache(path) as c:
        c.put_many("m", [(f"h{i}", vec(i, 64)) for i in range(n)])
    for suffix in ("-wal", "-shm"):
        assert not Path(str(path) + suffix).exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "zeroed_middle"])
def test_corrupt_database_moved_aside(tmp_path, damage):
    path = tmp_path / "emb.sqlite"
    if damage == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(3000) + b"definitely not sqlite" * 100)
    else:
        make_db(path)
        data = bytearray(path.read_bytes())
        half = len(data) // 2
        if damage == "truncated":
            data = data[:half]
        else:
            data[half - 4096:half + 4096] = bytes(8192)
        path.write_bytes(bytes(data))
    original = path.read_bytes()
    with EmbeddingCache(path) as c:   # no exception escapes
        aside = tmp_path / "emb.sqlite.corrupt"
        assert aside.exists() and aside.read_bytes() == original
        assert len(c) == 0
        c.put_many("m", [("h", vec(5))])
        assert np.array_equal(c.get("m", "h"), vec(5))
    with EmbeddingCache(path) as again:
        assert np.array_equal(again.get("m", "h"), vec(5))


def test_threads(cache):
    def work(t):
        for i in range(40):
            cache.put_many(f"m{t % 3}", [(f"t{t}-{i}", vec(t * 1000 + i))])
            got = cache.get_many(f"m{t % 3}", [f"t{t}-{j}" for j in range(i + 1)])
            assert len(got) == i + 1
            assert np.array_equal(got[f"t{t}-{i}"], vec(t * 1000 + i))
        return t

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(work, range(16))) == list(range(16))
    assert len(cache) == 16 * 40


def test_two_instances_same_file(tmp_path):
    path = tmp_path / "emb.sqlite"
    with EmbeddingCache(path) as a, EmbeddingCache(path) as b:
        def put(t):
            (a if t % 2 else b).put_many("m", [(f"{t}-{i}", vec(i)) for i in range(20)])
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(put, range(8)))
        assert len(a) == len(b) == 160


WRITER = textwrap.dedent("""
    import sys, os, numpy as np
    from orangecontrib.deepimage.core.cache import EmbeddingCache
    path, mode = sys.argv[1], sys.argv[2]
    cache = EmbeddingCache(path)
    batch = lambda b: [(f"b{b}-{i}", np.full(128, b * 1000 + i, np.float32))
                       for i in range(200)]
    if mode == "exit_in_transaction":
        cache.put_many("m", batch(0))
        cache._db.execute("BEGIN")
        cache._db.executemany("INSERT OR REPLACE INTO embeddings VALUES ('m', ?, 128, ?)",
                              [(k, v.tobytes()) for k, v in batch(1)])
        os._exit(3)
    for b in range(10**6):
        cache.put_many("m", batch(b))
        if b == 3:
            print("writing", flush=True)
""")


def check_consistent(path):
    with EmbeddingCache(path) as c:
        assert not Path(str(path) + ".corrupt").exists()
        keys = [f"b{b}-{i}" for b in range(2000) for i in range(200)]
        got = c.get_many("m", keys)
        assert len(got) == len(c) and len(got) % 200 == 0   # whole batches only
        for key, v in got.items():
            b, i = map(int, key[1:].split("-"))
            assert v.shape == (128,) and np.all(v == b * 1000 + i)
        c.put_many("m", [("after", vec(1))])
        assert np.array_equal(c.get("m", "after"), vec(1))
        return len(got)


def run_writer(path, mode):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), mode],
                            stdout=subprocess.PIPE, text=True)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killed_mid_write_leaves_consistent_cache(tmp_path):
    path = tmp_path / "emb.sqlite"
    proc = run_writer(path, "loop")
    try:
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(0.3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert check_consistent(path) >= 4 * 200


def test_exit_inside_transaction_keeps_last_commit(tmp_path):
    path = tmp_path / "emb.sqlite"
    proc = run_writer(path, "exit_in_transaction")
    assert proc.wait(timeout=60) == 3
    assert check_consistent(path) == 200


def test_content_hash_depends_only_on_bytes(tmp_path):
    data = b"\x89PNG some image bytes"
    (tmp_path / "a.png").write_bytes(data)
    (tmp_path / "copy with other name.jpg").write_bytes(data)
    h = content_hash(data)
    assert h == content_hash((tmp_path / "a.png").read_bytes())
    assert h == content_hash((tmp_path / "copy with other name.jpg").read_bytes())
    assert h == content_hash(bytearray(data))
    assert h != content_hash(data + b"\0") and h != content_hash(b"")
    assert len(h) == 40 and int(h, 16) >= 0


def test_default_cache_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPIMAGE_CACHE_DIR", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    with EmbeddingCache() as c:
        assert c.path == tmp_path / "here" / "embeddings.sqlite"
        c.put_many("m", [("h", vec(1))])
    assert (tmp_path / "here" / "embeddings.sqlite").is_file()


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG is for Linux")
def test_default_cache_dir_without_env(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPIMAGE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "orange3-deepimage"
    monkeypatch.setenv("DEEPIMAGE_CACHE_DIR", "")
    assert default_cache_dir() == tmp_path / "xdg" / "orange3-deepimage"
