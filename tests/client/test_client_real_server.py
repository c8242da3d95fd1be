"""The client against the real server, `deepimage serve`, in its own process."""
import csv
import os
import subprocess
import sys

import pytest

from orangecontrib.deepimage.client import (AccessRefused, RemoteEmbedder, ServerUnavailable,
                                            UnknownRemoteModel, list_models)
from orangecontrib.deepimage.core import Embedder

from client_standin import RealServer, cosine


def test_real_server_vectors_equal_local_ones(real_server, sources, cache, local_embedder):
    remote = RemoteEmbedder(real_server.url, token=real_server.token, cache=cache,
                            batch_size=2, in_flight=2)
    assert remote.weights_id == local_embedder.weights_id and remote.server_device == "cpu"
    result = remote.embed(sources)
    local = local_embedder.embed(sources)
    assert list(result.indices) == list(local.indices) and len(result.indices) == 6
    assert cosine(result.embeddings, local.embeddings).min() >= 0.999
    assert [s.index for s in result.skipped] == [s.index for s in local.skipped]
    assert [s.reason for s in result.skipped] == [s.reason for s in local.skipped]
    assert remote.embed(sources).cached == 6


def test_real_server_refuses_wrong_tokens_and_unknown_models(real_server, cache):
    with pytest.raises(AccessRefused, match="refused the access token"):
        RemoteEmbedder(real_server.url, token="nope", cache=cache)
    with pytest.raises(AccessRefused, match="refused the access token"):
        list_models(real_server.url)
    with pytest.raises(UnknownRemoteModel, match="it offers: squeezenet"):
        RemoteEmbedder(real_server.url, "vgg19", token=real_server.token, cache=cache)
    (model,) = list_models(real_server.url, token=real_server.token)
    assert model["name"] == "squeezenet" and model["dim"] == 512


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "orangecontrib.deepimage.cli", *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def read_csv(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    return rows[0], {r[0]: [float(v) for v in r[1:]] for r in rows[1:]}


def test_cli_embed_on_the_server_writes_what_local_embedding_writes(
        real_server, photo_dir, tmp_path):
    env = {"DEEPIMAGE_CACHE_DIR": str(tmp_path / "cli-cache")}
    remote = run_cli("embed", str(photo_dir), "-o", str(tmp_path / "remote.csv"),
                     "--server", real_server.url, "--token-file", real_server.token_file,
                     env=env)
    assert remote.returncode == 0, remote.stderr
    assert "Embedded 6 images with SqueezeNet 1.1 (remote, server: 127.0.0.1:" in remote.stderr
    assert "skipped 3" in remote.stderr and "empty.jpg: empty file" in remote.stderr
    local = run_cli("embed", str(photo_dir), "-o", str(tmp_path / "local.csv"), "--no-cache")
    assert local.returncode == 0, local.stderr
    header, remote_rows = read_csv(tmp_path / "remote.csv")
    local_header, local_rows = read_csv(tmp_path / "local.csv")
    assert header == local_header and list(remote_rows) == list(local_rows)
    import numpy as np
    a, b = np.array(list(remote_rows.values())), np.array(list(local_rows.values()))
    assert cosine(a, b).min() >= 0.999
    # the token from the environment; the second run comes from the cache
    again = run_cli("embed", str(photo_dir), "--server", real_server.url, "-o",
                    str(tmp_path / "again.npy"),
                    env={**env, "DEEPIMAGE_SERVER_TOKEN": real_server.token})
    assert again.returncode == 0, again.stderr
    assert "(6 from the cache)" in again.stderr


def test_cli_reports_a_refused_token_and_a_missing_server(real_server, photo_dir, tmp_path):
    refused = run_cli("embed", str(photo_dir), "--server", real_server.url,
                      env={"DEEPIMAGE_SERVER_TOKEN": "wrong"})
    assert refused.returncode == 2 and "refused the access token" in refused.stderr
    import socket
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    nobody = run_cli("embed", str(photo_dir), "--server", f"http://127.0.0.1:{free}",
                     "--no-cache")
    assert nobody.returncode == 2 and "no embedding server at" in nobody.stderr


def test_a_second_run_needs_no_server(tmp_path, sources, cache):
    server = RealServer(str(tmp_path)).wait_ready()
    try:
        first = RemoteEmbedder(server.url, cache=cache).embed(sources)
    finally:
        server.stop()
    with pytest.raises(ServerUnavailable):
        list_models(server.url, retries=0)
    rerun = RemoteEmbedder(server.url, cache=cache, retries=0).embed(sources)
    assert rerun.cached == 6 and (rerun.embeddings == first.embeddings).all()
    # and a local run with the same weights finds them too
    assert Embedder("squeezenet", backend="torch", cache=cache).embed(sources).cached == 6
