"""RemoteEmbedder against a server on 127.0.0.1: vectors, order, skips, cache, cancel."""
import numpy as np
import pytest

from orangecontrib.deepimage.client import RemoteEmbedder, ServerUnavailable
from orangecontrib.deepimage.core import Cancelled, Embedder

from client_standin import cosine

GOOD = ("0.jpg", "1.jpg", "2.jpg")


def test_vectors_equal_local_ones_in_order_and_bad_files_are_skipped_locally(
        standin, sources, cache, local_embedder):
    server = standin()
    remote = RemoteEmbedder(server.url, "squeezenet", cache=cache, batch_size=2)
    assert (remote.model, remote.dim, remote.input_size) == ("squeezenet", 512, 227)
    assert remote.weights_id == local_embedder.weights_id and remote.backend == "remote"
    assert remote.device == f"server: {server.url.split('//')[1]}"
    result = remote.embed(sources)
    good = [i for i, s in enumerate(sources) if s.endswith(GOOD)]
    assert list(result.indices) == good and result.embeddings.shape == (6, 512)
    assert result.embeddings.dtype == np.float32 and result.cached == 0
    local = local_embedder.embed(sources)
    assert list(local.indices) == good
    assert cosine(result.embeddings, local.embeddings).min() >= 0.999
    reasons = {s.source.rsplit("/", 1)[1]: s.reason for s in result.skipped}
    assert set(reasons) == {"empty.jpg", "notes.png", "truncated.jpg"}
    assert "empty" in reasons["empty.jpg"] and "truncated" in reasons["truncated.jpg"]
    assert server.knobs.images == 6  # bad files were never sent
    assert server.knobs.requests == 3  # six images, two per request


def test_cache_is_shared_with_local_embedding_and_needs_no_server(
        standin, sources, cache, tmp_path):
    server = standin()
    remote = RemoteEmbedder(server.url, cache=cache)
    first = remote.embed(sources)
    again = remote.embed(sources)
    assert again.cached == 6 and server.knobs.requests == 1  # no request the second time
    np.testing.assert_array_equal(again.embeddings, first.embeddings)
    # the same key as local embedding with the same weights: local runs hit it too
    local = Embedder("squeezenet", backend="torch", cache=cache).embed(sources)
    assert local.cached == 6
    server.stop()
    assert remote.embed(sources).cached == 6  # the same embedder, server gone
    # a new one (a new session, the CLI) uses what the server said last time
    offline = RemoteEmbedder(server.url, cache=cache, retries=0)
    rerun = offline.embed(sources)
    assert rerun.cached == 6 and list(rerun.indices) == list(first.indices)
    # ...but an image not in the cache needs the server, and says so
    from PIL import Image
    Image.new("RGB", (30, 20), "red").save(tmp_path / "new.png")
    with pytest.raises(ServerUnavailable, match="no embedding server at"):
        offline.embed(sources + [str(tmp_path / "new.png")])


def test_crop_is_a_different_cache_entry_and_matches_local_crop(
        standin, sources, cache, local_embedder):
    server = standin()
    cropped = RemoteEmbedder(server.url, cache=cache, crop=True).embed(sources)
    assert cropped.cached == 0
    assert RemoteEmbedder(server.url, cache=cache).embed(sources).cached == 0
    local = Embedder("squeezenet", backend="torch", cache=False, crop=True).embed(sources)
    assert cosine(cropped.embeddings, local.embeddings).min() >= 0.999


def test_progress_reaches_the_total_in_order(standin, sources, cache):
    server = standin()
    calls = []
    RemoteEmbedder(server.url, cache=cache, batch_size=2).embed(
        sources, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (9, 9) and len(calls) >= 3
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_cancel_raises_cancelled_and_keeps_what_was_cached(standin, sources, cache):
    server = standin()
    good = [s for s in sources if s.endswith(GOOD)]
    remote = RemoteEmbedder(server.url, cache=cache, batch_size=1, in_flight=1)
    steps = []
    with pytest.raises(Cancelled):
        remote.embed(good, progress=lambda done, total: steps.append(done),
                     should_stop=lambda: len(steps) >= 2)
    assert steps == [1, 2]
    again = remote.embed(good)
    assert len(again.indices) == 6 and 2 <= again.cached < 6


def test_no_images_gives_an_empty_result(standin, cache):
    server = standin()
    result = RemoteEmbedder(server.url, cache=cache).embed([])
    assert result.embeddings.shape == (0, 512) and result.skipped == []
