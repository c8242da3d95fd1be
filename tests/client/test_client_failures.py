"""Failures a user can hit with a remote server, and Orange's protocol as a fallback."""
import socket

import numpy as np
import pytest

from orangecontrib.deepimage.client import (AccessRefused, RemoteEmbedder, ServerUnavailable,
                                            UnknownRemoteModel, list_models, read_token)
from orangecontrib.deepimage.core import UnknownModel

from client_standin import cosine


def test_transient_503s_are_retried_honouring_retry_after(standin, sources, cache):
    server = standin(fail_first=2, retry_after="0")
    result = RemoteEmbedder(server.url, cache=cache, retries=3).embed(sources)
    assert len(result.indices) == 6
    assert server.knobs.requests == 3  # two refusals, then the one batch


def test_a_server_that_stays_busy_gives_a_clear_error(standin, sources, cache):
    server = standin(fail_first=100, retry_after="0")
    remote = RemoteEmbedder(server.url, cache=cache, retries=2)
    with pytest.raises(ServerUnavailable, match=r"busy or failing \(503: busy\) after 3 tries"):
        remote.embed(sources)
    assert server.knobs.requests == 3


def test_a_wrong_or_missing_token_is_refused(standin, sources, cache):
    server = standin(token="s3cret")
    with pytest.raises(AccessRefused, match="refused the access token"):
        RemoteEmbedder(server.url, token="wrong", cache=cache)
    with pytest.raises(AccessRefused, match="requires one"):
        list_models(server.url)
    assert [m["name"] for m in list_models(server.url, token="s3cret")] == ["squeezenet"]
    result = RemoteEmbedder(server.url, token="s3cret", cache=cache).embed(sources)
    assert len(result.indices) == 6


def test_read_token_from_the_file_else_the_environment(tmp_path, monkeypatch):
    """What `deepimage embed --token-file` and lesson 3's script send."""
    monkeypatch.setenv("DEEPIMAGE_SERVER_TOKEN", "from-the-environment")
    token_file = tmp_path / "token"
    token_file.write_text("  from-the-file\n", encoding="utf-8")
    assert read_token(str(token_file)) == "from-the-file"
    assert read_token(None) == "from-the-environment"
    token_file.write_text("\n", encoding="utf-8")
    assert read_token(str(token_file)) is None  # an empty file: no token
    monkeypatch.setenv("DEEPIMAGE_SERVER_TOKEN", "")
    assert read_token(None) is None
    with pytest.raises(OSError):
        read_token(str(tmp_path / "missing"))


def test_an_unknown_model_lists_what_the_server_has(standin, cache):
    server = standin()
    with pytest.raises(UnknownRemoteModel, match=r"no model 'vgg16'; it offers: squeezenet") \
            as caught:
        RemoteEmbedder(server.url, "vgg16", cache=cache)
    assert isinstance(caught.value, UnknownModel)  # callers catching local errors see it too
    # an alias of a registry network finds the server's canonical name
    assert RemoteEmbedder(server.url, "SqueezeNet1.1", cache=cache).model == "squeezenet"


def test_nothing_listening_says_there_is_no_server(cache):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(ServerUnavailable, match=f"no embedding server at {url}"):
        RemoteEmbedder(url, cache=cache, retries=1)
    with pytest.raises(ServerUnavailable, match="no embedding server at"):
        list_models(url, retries=0)


def test_list_models_describes_the_servers_networks(standin, local_embedder):
    server = standin()
    (model,) = list_models(server.url + "/")
    assert model == {"name": "squeezenet", "title": "SqueezeNet 1.1", "dim": 512,
                     "input_size": 227, "device": "cpu",
                     "weights_id": local_embedder.weights_id, "fine_tuned": False,
                     "protocol": "v1"}


def test_batches_the_server_finds_too_big_are_split(standin, sources, cache):
    server = standin(max_images=2)
    result = RemoteEmbedder(server.url, cache=cache, batch_size=6).embed(sources)
    assert len(result.indices) == 6 and server.knobs.images == 6


def test_orange_protocol_only_servers_are_used_one_image_per_request(
        standin, sources, cache, local_embedder):
    server = standin(v1=False)
    remote = RemoteEmbedder(server.url, cache=cache)
    assert remote.protocol == "orange" and remote.dim == 512 and remote.weights_id is None
    assert server.url in remote.cache_key  # the weights are unknown: the server names them
    probes = server.knobs.requests  # the first answer gave the dimension
    result = remote.embed(sources)
    assert server.knobs.requests == probes + 6
    good = [i for i, s in enumerate(sources) if s.endswith(("0.jpg", "1.jpg", "2.jpg"))]
    assert list(result.indices) == good and len(result.skipped) == 3
    local = local_embedder.embed(sources)
    # JPEG at quality 75, as Orange's client sends: close, not identical
    similarity = cosine(result.embeddings, local.embeddings)
    assert similarity.min() > 0.95, similarity
    assert not np.allclose(result.embeddings, local.embeddings)
    assert remote.embed(sources).cached == 6
    assert [m["protocol"] for m in list_models(server.url)] == ["orange"] * 4


def test_orange_protocol_unknown_model(standin, cache):
    server = standin(v1=False)
    with pytest.raises(UnknownRemoteModel, match="vgg16"):
        RemoteEmbedder(server.url, "vgg16", cache=cache)
    with pytest.raises(UnknownRemoteModel, match="input size"):
        RemoteEmbedder(server.url, "painters", cache=cache)


def test_retry_after_is_honoured(standin, sources, cache):
    import time
    server = standin(fail_first=1, retry_after="1")
    remote = RemoteEmbedder(server.url, cache=cache)
    start = time.monotonic()
    assert len(remote.embed(sources).indices) == 6
    assert time.monotonic() - start >= 0.9  # waited as the server asked, not less


def test_weights_changed_on_the_server_are_never_mixed_into_the_cache(
        standin, sources, cache, local_embedder):
    from orangecontrib.deepimage.client import ServerError
    server = standin()
    # One batch on the wire at a time: with several, a request of the failed run can
    # still finish once the next run has taken the new weights; it then caches a vector
    # of the new weights under their key (correct, never mixed), and `again` would find
    # it cached: a race in the test, not a mix in the cache.
    remote = RemoteEmbedder(server.url, cache=cache, batch_size=2, in_flight=1)
    good = [s for s in sources if s.endswith(("0.jpg", "1.jpg", "2.jpg"))]
    remote.embed(good[:2])
    server.knobs.weights_id = "retrained-1"  # the operator restarted it with new weights
    with pytest.raises(ServerError, match="changed the weights"):
        remote.embed(good)
    again = remote.embed(good)  # the next run asks the server again
    assert remote.weights_id == "retrained-1" and again.cached == 0
    assert "retrained-1" in remote.cache_key
    from orangecontrib.deepimage.core.cache import content_hash
    from orangecontrib.deepimage.core.pipeline import vector_cache_key
    hashes = [content_hash(open(s, "rb").read()) for s in good]
    old_key = vector_cache_key("squeezenet", local_embedder.weights_id, 227)
    assert set(cache.get_many(old_key, hashes)) == set(hashes[:2])  # nothing new mixed in
    assert len(cache.get_many(remote.cache_key, hashes)) == 6
