"""A real `deepimage serve` (uvicorn on 127.0.0.1), Orange's own client and a fuzz run."""
from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from orangecontrib.deepimage.core.local_embedder import Embedder

from server_helpers import TOKEN, jpeg

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _orange_embedder(model: str, size: int):
    """Orange's own client: orange3-imageanalytics' ServerEmbedder when installed, else the
    same thing over Orange's ServerEmbedderCommunicator (RGB, resized, default JPEG)."""
    try:
        from orangecontrib.imageanalytics.server_embedder import ServerEmbedder
    except ImportError:
        import io

        from PIL import Image

        from Orange.misc.server_embedder import ServerEmbedderCommunicator

        class ServerEmbedder(ServerEmbedderCommunicator):
            def __init__(self, model_name, max_parallel_requests, server_url, kind,
                         image_size):
                super().__init__(model_name, max_parallel_requests, server_url, kind)
                self.content_type = "image/jpeg"
                self.image_size = image_size

            async def _encode_data_instance(self, path):
                with Image.open(path) as image:
                    image = image.convert("RGB").resize(self.image_size, Image.LANCZOS)
                    buf = io.BytesIO()
                    image.save(buf, format="JPEG")
                    return buf.getvalue()
    return ServerEmbedder(model, 8, "https://api.garaza.io/", "image", (size, size))


def test_orange_client_against_the_live_server(live_server, tmp_path, monkeypatch):
    paths = []
    for i in range(5):
        path = tmp_path / f"photo{i}.jpg"
        path.write_bytes(jpeg(100 + i, (320, 240), quality=95))
        paths.append(str(path))
    # Orange's client sends no Authorization header: the token goes into the base URL
    monkeypatch.setenv("ORANGE_EMBEDDING_API_URL", f"{live_server}/t/{TOKEN}/")
    embedder = _orange_embedder("squeezenet", 227)
    embedder.clear_cache()
    vectors = embedder.embedd_data(paths)
    assert all(v is not None for v in vectors)
    remote = np.array(vectors, dtype=np.float32)
    local = Embedder("squeezenet", cache=False).embed(paths).embeddings
    assert remote.shape == local.shape == (5, 512)
    cosine = (remote * local).sum(1) / np.linalg.norm(remote, axis=1) / np.linalg.norm(local,
                                                                                       axis=1)
    assert cosine.min() > 0.98, cosine  # the client re-encodes as JPEG: close, not equal


def test_live_auth_and_batch_api(live_server):
    assert httpx.get(f"{live_server}/healthz").status_code == 200
    assert httpx.post(f"{live_server}/image/squeezenet", content=jpeg(1)).status_code == 401
    response = httpx.post(f"{live_server}/v1/embed/squeezenet", headers=AUTH,
                          files=[("images", jpeg(1)), ("images", b"nope")])
    assert response.status_code == 200
    assert [next(iter(r)) for r in response.json()["results"]] == ["embedding", "error"]
    metrics = httpx.get(f"{live_server}/metrics", headers=AUTH).text
    assert 'deepimage_errors_total{kind="unauthorized"} 1.0' in metrics


def test_concurrent_requests_are_batched(live_server):
    async def main():
        async with httpx.AsyncClient(base_url=live_server, headers=AUTH, timeout=60) as client:
            return await asyncio.gather(*(client.post("/image/squeezenet", content=jpeg(i))
                                          for i in range(24)))

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 24
    metrics = httpx.get(f"{live_server}/metrics", headers=AUTH).text
    counts = {line.split("{")[0]: float(line.split()[-1]) for line in metrics.splitlines()
              if line.startswith(("deepimage_batch_size_count", "deepimage_batch_size_sum"))}
    # more images than network calls: requests were gathered into batches
    assert counts["deepimage_batch_size_sum"] > counts["deepimage_batch_size_count"]


def test_fuzz_no_server_errors(live_server):
    """Schemathesis cases for every operation of the OpenAPI schema: no 5xx, ever."""
    schemathesis = pytest.importorskip("schemathesis")
    import hypothesis
    from schemathesis.checks import not_a_server_error
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/image/{model}", "/v1/embed/{model}",
                                               "/v1/models", "/healthz", "/readyz", "/metrics"}
    statuses = []
    for operation in operations:
        @hypothesis.settings(max_examples=8, deadline=None, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        @hypothesis.given(case=operation.as_strategy())
        def check(case):
            for headers in (AUTH, None):
                response = case.call_and_validate(headers=headers,
                                                  checks=[not_a_server_error], timeout=30)
                statuses.append(response.status_code)
        check()
    assert len(statuses) >= 2 * len(operations)
    assert 401 in statuses and 200 in statuses and max(statuses) < 500
