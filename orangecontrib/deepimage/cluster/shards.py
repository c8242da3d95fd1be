"""Parquet shards plus a manifest: the output of a big embedding run, resumable.

Shard k holds the inputs ``k * shard_size`` up to ``(k + 1) * shard_size`` of the
run's source list, one row per input in input order: ``index`` (position in the
source list), ``image`` (its path or URL), ``embedding`` (float32 vector; null when
skipped) and ``skipped`` (the reason; null when embedded). A shard file is written
whole or not at all (a temporary file, then a rename), and ``manifest.json`` lists
the finished ones, so a rerun embeds only the shards that are missing.

Needs pyarrow (which Ray Data brings), never Ray itself: shards are read back with
:func:`read_shards` on any computer.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.pipeline import EmbeddingResult
from ..core.images import Skipped

__all__ = ["MANIFEST", "ShardPlan", "ShardMismatch", "ShardedRun", "read_shards",
           "sources_digest"]

MANIFEST = "manifest.json"
FORMAT = "deepimage-embedding-shards"
FORMAT_VERSION = 1


class ShardMismatch(ValueError):
    """The output folder holds shards of another run (other images, model or shard size)."""


def sources_digest(sources: Sequence[str]) -> str:
    """A fingerprint of the source list, in order: a rerun must mean the same images."""
    digest = hashlib.blake2b(digest_size=16)
    for source in sources:
        digest.update(source.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


def _write_atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass
class ShardedRun:
    """What a sharded run did: shards in all, written now, found finished before."""

    directory: Path
    shards: int
    written: int
    resumed: int
    images: int  # inputs handled now (embedded or skipped)
    cached: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")

    def manifest(self) -> dict:
        """The folder's manifest.json: the run, and each finished shard's counts."""
        return json.loads((self.directory / MANIFEST).read_text(encoding="utf-8"))

    def read(self) -> EmbeddingResult:
        """All the run's vectors, in input order (see read_shards)."""
        return read_shards(self.directory)


@dataclass
class ShardPlan:
    """Which inputs go to which shard, and which shards are already finished."""

    directory: Path
    sources: list[str]
    shard_size: int
    run: dict  # what identifies the run: model, weights, preprocessing
    manifest: dict = field(default_factory=dict)

    @classmethod
    def open(cls, directory: "str | os.PathLike", sources: Sequence[str], shard_size: int,
             run: dict) -> "ShardPlan":
        """The plan for ``sources`` in ``directory``, resuming a run found there.

        Raises ShardMismatch when the folder holds another run's shards, rather than
        mixing vectors of different images or networks in one folder.
        """
        if shard_size < 1:
            raise ValueError("the shard size must be at least 1 image")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        identity = {"format": FORMAT, "version": FORMAT_VERSION, "count": len(sources),
                    "sources": sources_digest(sources), "shard_size": shard_size, **run}
        path = directory / MANIFEST
        manifest = {**identity, "shards": {}}
        if path.exists():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
                old["shards"].items()
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ShardMismatch(f"{path} is not a manifest this program wrote ({exc}): "
                                    "choose another output folder, or delete that one to "
                                    "start again.") from exc
            different = sorted(k for k in identity if old.get(k) != identity[k])
            if different:
                raise ShardMismatch(
                    f"{directory} holds shards of another run (its {', '.join(different)} "
                    f"differ{'s' * (len(different) == 1)}): choose another output folder, "
                    "or delete that one to start again.")
            manifest = old
        elif any(directory.glob("shard-*.parquet")):
            raise ShardMismatch(f"{directory} has shard files but no {MANIFEST}: choose "
                                "another output folder, or delete that one to start again.")
        plan = cls(directory, list(sources), shard_size, run, manifest)
        plan._forget_missing_files()
        plan._save_manifest()
        return plan

    @property
    def count(self) -> int:
        """How many shards the run has."""
        return -(-len(self.sources) // self.shard_size)

    def shard_of(self, index: int) -> int:
        return index // self.shard_size

    def rows(self, shard: int) -> range:
        """The input positions of ``shard``."""
        return range(shard * self.shard_size,
                     min((shard + 1) * self.shard_size, len(self.sources)))

    def name(self, shard: int) -> str:
        return f"shard-{shard:05d}.parquet"

    def finished(self) -> set[int]:
        return {int(k) for k in self.manifest["shards"]}

    def pending(self) -> list[int]:
        done = self.finished()
        return [k for k in range(self.count) if k not in done]

    def _forget_missing_files(self) -> None:
        """A shard the manifest lists but whose file is gone is embedded again."""
        shards = self.manifest["shards"]
        for key in [k for k, v in shards.items() if not (self.directory / v["file"]).is_file()]:
            del shards[key]

    def write(self, shard: int, indices: np.ndarray, vectors: np.ndarray,
              reasons: Sequence[str], cached: int = 0) -> None:
        """Write one finished shard (rows in any order) and record it in the manifest."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        order = np.argsort(indices, kind="stable")
        indices = np.asarray(indices, dtype=np.int64)[order]
        expected = np.arange(self.rows(shard).start, self.rows(shard).stop)
        if not np.array_equal(indices, expected):
            raise RuntimeError(f"shard {shard} is incomplete or has rows twice; not written")
        vectors = np.asarray(vectors, dtype=np.float32)[order]
        reasons = [reasons[i] for i in order]
        skipped = np.array([bool(r) for r in reasons])
        dim = vectors.shape[1]
        flat = pa.array(vectors.reshape(-1), pa.float32())
        embedding = pa.FixedSizeListArray.from_arrays(flat, dim,
                                                      mask=pa.array(skipped))
        table = pa.table({
            "index": pa.array(indices),
            "image": pa.array([self.sources[i] for i in indices], pa.string()),
            "embedding": embedding,
            "skipped": pa.array([r or None for r in reasons], pa.string()),
        })
        name = self.name(shard)
        _write_atomic(self.directory / name, lambda tmp: pq.write_table(table, tmp))
        self.manifest["dim"] = dim
        self.manifest["shards"][str(shard)] = {
            "file": name, "rows": len(indices), "embedded": int((~skipped).sum()),
            "skipped": int(skipped.sum()), "cached": int(cached)}
        self._save_manifest()

    def _save_manifest(self) -> None:
        shards = self.manifest["shards"]
        self.manifest["shards"] = {k: shards[k] for k in sorted(shards, key=int)}
        text = json.dumps(self.manifest, indent=1)
        path = self.directory / MANIFEST
        _write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_shards(directory: "str | os.PathLike") -> EmbeddingResult:
    """The embeddings of a finished sharded run, as one EmbeddingResult in input order.

    Raises ValueError when shards are missing (the run was stopped: run it again).
    """
    import pyarrow.parquet as pq
    directory = Path(directory)
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    count, size = manifest["count"], manifest["shard_size"]
    missing = [k for k in range(-(-count // size)) if str(k) not in manifest["shards"]]
    if missing:
        raise ValueError(f"{directory}: {len(missing)} of {-(-count // size)} shards are not "
                         "finished; run the same command again to embed them.")
    dim = int(manifest.get("dim") or 0)
    sources: list[str] = []
    indices, vectors, skipped = [], [], []
    for key in sorted(manifest["shards"], key=int):
        table = pq.read_table(directory / manifest["shards"][key]["file"])
        index = table.column("index").to_numpy()
        images = table.column("image").to_pylist()
        reasons = table.column("skipped").to_pylist()
        embedding = table.column("embedding").combine_chunks()
        # the values of null (skipped) rows are stored too, so a reshape lines them up
        matrix = embedding.values.to_numpy(zero_copy_only=False).reshape(len(table), dim)
        ok = np.array([r is None for r in reasons], dtype=bool)
        sources += images
        indices.append(index[ok])
        vectors.append(matrix[ok])
        skipped += [Skipped(int(i), images[n], reasons[n])
                    for n, i in enumerate(index) if not ok[n]]
    embeddings = np.concatenate(vectors).astype(np.float32, copy=False)
    cached = sum(s.get("cached", 0) for s in manifest["shards"].values())
    return EmbeddingResult(sources, manifest.get("model", ""), dim,
                           np.concatenate(indices).astype(np.int64), embeddings, skipped, cached)
