"""Embedding on a real local Ray (2 CPUs, started once for this module): the vectors,
their order and the skipped rows are local embedding's; a worker that dies mid-run
is replaced and its batch redone; shards resume.

Vectors are compared exactly (assert_array_equal): the actors run the same
onnxruntime graph on the same CPU as local embedding, and each image's row does not
depend on the images it is batched with, so the bytes agree. The actors batch
differently from local embedding on purpose (rows_per_call=4 or 3, not 16).
"""
import os

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from orangecontrib.deepimage import cli  # noqa: E402
from orangecontrib.deepimage.cluster import (ShardMismatch, embed_on_ray,  # noqa: E402
                                             read_shards)
from orangecontrib.deepimage.cluster.ray_embed import CRASH_ONCE_VARIABLE  # noqa: E402
from orangecontrib.deepimage.core import Embedder, find_images  # noqa: E402

IMAGES = 12


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One Ray for the module: 2 CPUs, no dashboard, a small object store (this
    machine's /dev/shm and memory are shared by several test runs)."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=150 * 2**20,
             logging_level="WARNING", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """12 distinct JPEGs in two folders, and one file that is not an image (third in
    the listing), so a skipped row sits between embedded ones."""
    folder = tmp_path_factory.mktemp("ray-images")
    rng = np.random.default_rng(7)
    for i in range(IMAGES):
        sub = folder / ("a" if i < 6 else "b")
        sub.mkdir(exist_ok=True)
        pixels = rng.integers(0, 255, (40 + i, 56, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(sub / f"img{i:02d}.jpg")
    (folder / "a" / "img01b.jpg").write_bytes(b"not a jpeg")
    return folder


@pytest.fixture(scope="module")
def sources(image_dir):
    return find_images([image_dir])


@pytest.fixture(scope="module")
def local(sources):
    """Local embedding (core), the reference."""
    return Embedder("squeezenet", cache=False).embed(sources)


def assert_same_as_local(result, local):
    assert result.sources == local.sources
    np.testing.assert_array_equal(result.indices, local.indices)
    np.testing.assert_array_equal(result.embeddings, local.embeddings)
    assert [(s.index, s.source, s.reason) for s in result.skipped] == \
        [(s.index, s.source, s.reason) for s in local.skipped]


def test_vectors_equal_local_embedding_in_input_order(sources, local):
    assert len(local.indices) == IMAGES and [s.index for s in local.skipped] == [2]
    progress = []
    result = embed_on_ray(sources, "squeezenet", cache=False, rows_per_call=4, actors=2,
                          cpus_per_actor=1, progress=lambda done, total:
                          progress.append((done, total)))
    assert_same_as_local(result, local)
    assert result.embeddings.dtype == np.float32 and result.dim == 512
    assert progress[0] == (0, 13) and progress[-1] == (13, 13)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_a_killed_actor_is_replaced_and_nothing_is_lost_or_repeated(sources, local,
                                                                    tmp_path):
    marker = tmp_path / "crashed"
    result = embed_on_ray(sources, "squeezenet", cache=False, rows_per_call=3, actors=1,
                          cpus_per_actor=1, retries=2,
                          runtime_env={"env_vars": {CRASH_ONCE_VARIABLE: str(marker)}})
    assert marker.exists(), "no actor crashed: the drill did not run"
    assert int(marker.read_text()) != os.getpid()  # it was a worker that died
    # run_on_ray raises on a row seen twice or never; the rows are local's
    assert_same_as_local(result, local)


def test_shards_are_written_read_back_and_resumed(sources, local, tmp_path):
    out = tmp_path / "shards"
    first = embed_on_ray(sources, "squeezenet", cache=False, output_dir=out, shard_size=5,
                         rows_per_call=4)
    assert (first.shards, first.written, first.resumed, first.images) == (3, 3, 0, 13)
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json", "shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet"]
    assert_same_as_local(read_shards(out), local)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}

    again = embed_on_ray(sources, "squeezenet", cache=False, output_dir=out, shard_size=5)
    assert (again.written, again.resumed, again.images) == (0, 3, 0)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")} == stamps

    (out / "shard-00001.parquet").unlink()  # as if the run had stopped before it
    resumed = embed_on_ray(sources, "squeezenet", cache=False, output_dir=out, shard_size=5,
                           rows_per_call=4)
    assert (resumed.written, resumed.resumed, resumed.images) == (1, 2, 5)
    now = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}
    assert now.pop("shard-00001.parquet") and \
        now == {k: v for k, v in stamps.items() if k != "shard-00001.parquet"}
    assert_same_as_local(read_shards(out), local)


def test_a_folder_of_another_run_is_refused(sources, tmp_path):
    out = tmp_path / "shards"
    embed_on_ray(sources[:4], "squeezenet", cache=False, output_dir=out, shard_size=2)
    with pytest.raises(ShardMismatch, match="another run.*sources"):
        embed_on_ray(sources, "squeezenet", cache=False, output_dir=out, shard_size=2)
    with pytest.raises(ShardMismatch, match="shard_size"):
        embed_on_ray(sources[:4], "squeezenet", cache=False, output_dir=out, shard_size=3)


def test_cli_ray_writes_what_local_embedding_writes(image_dir, tmp_path, capsys):
    local_csv, ray_csv = tmp_path / "local.csv", tmp_path / "ray.csv"
    assert cli.main(["embed", str(image_dir), "--no-cache", "-q", "-o", str(local_csv)]) == 0
    assert cli.main(["embed", str(image_dir), "--no-cache", "--ray", "local",
                     "-o", str(ray_csv)]) == 0
    assert ray_csv.read_text() == local_csv.read_text()
    err = capsys.readouterr().err
    assert "Embedded 12 images with SqueezeNet 1.1 on Ray" in err
    assert "skipped img01b.jpg" in err.replace(str(image_dir / "a") + os.sep, "")


def test_cli_shards_then_rerun(image_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["embed", str(image_dir), "--ray", "local", "--shards", "4", "-o", str(out)]
    assert cli.main(args) == 0
    assert "Wrote 4 shards" in capsys.readouterr().err
    assert cli.main(args) == 0
    assert "Wrote 0 shards" in capsys.readouterr().err
    assert len(read_shards(out).indices) == IMAGES


def test_without_retries_the_killed_actor_fails_the_run(sources, tmp_path):
    """The drill above bites: with no restart allowed, the same crash ends the run."""
    marker = tmp_path / "crashed"
    with pytest.raises(Exception, match="actor died"):
        embed_on_ray(sources, "squeezenet", cache=False, rows_per_call=3, actors=1,
                     cpus_per_actor=1, retries=0,
                     runtime_env={"env_vars": {CRASH_ONCE_VARIABLE: str(marker)}})
    assert marker.exists()


def test_cli_names_the_workers_error_when_actors_cannot_start(image_dir, tmp_path, capsys):
    """VGG-16's weights are on no node here (and downloads are off): the actors fail
    to start, and the message is core's own, not Ray's wrappers around it."""
    assert cli.main(["embed", str(image_dir), "--ray", "local", "-m", "vgg16",
                     "-o", str(tmp_path / "vgg.csv")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("deepimage: error: The Ray run failed: WeightsUnavailable: "
                          "VGG-16 weights are not on this computer"), err
    assert not (tmp_path / "vgg.csv").exists()


def test_asking_for_cuda_on_a_cluster_without_gpus_is_an_error(sources):
    with pytest.raises(ValueError, match="The Ray cluster has no GPU"):
        embed_on_ray(sources, "squeezenet", device="cuda")
