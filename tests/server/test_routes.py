"""Every route and error status of the server, through FastAPI's TestClient."""
from __future__ import annotations

import numpy as np
import pytest

from orangecontrib.deepimage.core.local_embedder import Embedder
from orangecontrib.deepimage.core.images import decode_image

from server_helpers import LOCAL, TOKEN, jpeg, png_claiming


@pytest.fixture(scope="module")
def local():
    """The same network, locally: what the server's vectors must equal."""
    return Embedder("squeezenet", cache=False)


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["models"] == ["squeezenet"]


def test_not_ready_before_the_models_are_loaded():
    from fastapi.testclient import TestClient
    from orangecontrib.deepimage.server.app import create_app
    from orangecontrib.deepimage.server.config import Settings
    client = TestClient(create_app(Settings()), base_url=LOCAL)  # no `with`: no lifespan
    response = client.get("/readyz")
    assert response.status_code == 503 and "loading" in response.json()["detail"]
    response = client.post("/image/squeezenet", content=jpeg(0))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert client.get("/healthz").status_code == 200


def test_models_list_matches_the_local_embedder(client, local):
    (model,) = client.get("/v1/models").json()["models"]
    assert model == {"name": "squeezenet", "title": "SqueezeNet 1.1", "dim": 512,
                     "input_size": 227, "device": "cpu", "devices": ["cpu"],
                     "weights_id": local.weights_id,
                     "fine_tuned": False}


def test_orange_protocol_gives_the_local_vector(client, local):
    data = jpeg(1, (300, 200))
    response = client.post("/image/squeezenet?machine=abc&session=123&retry=1", content=data,
                           headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200
    vector = np.array(response.json()["embedding"], dtype=np.float32)
    expected = local.embed_arrays(decode_image(data, (227, 227))[None])[0]
    assert vector.shape == (512,)
    np.testing.assert_allclose(vector, expected, rtol=1e-4, atol=1e-4)


def test_aliases_name_the_same_model(client):
    response = client.post("/image/SqueezeNet1.1", content=jpeg(2))
    assert response.status_code == 200 and len(response.json()["embedding"]) == 512


@pytest.mark.parametrize("body, reason", [(b"", "empty"), (b"GIF89a not really", "image"),
                                          (jpeg(3)[:200], "truncated")])
def test_bad_bodies_are_422_with_a_reason(client, body, reason):
    response = client.post("/image/squeezenet", content=body)
    assert response.status_code == 422
    assert reason in response.json()["detail"].lower()


def test_too_many_pixels_is_413_before_decoding(client):
    response = client.post("/image/squeezenet", content=png_claiming(100_000, 100_000))
    assert response.status_code == 413
    assert "megapixel" in response.json()["detail"] or "pixels" in response.json()["detail"]
    response = client.post("/image/squeezenet", content=png_claiming(10_000, 6_000))
    assert response.status_code == 413 and "50 megapixel limit" in response.json()["detail"]
    # and the worker is fine afterwards
    assert client.post("/image/squeezenet", content=jpeg(4)).status_code == 200


def test_unknown_model_is_404_listing_the_served_ones(client):
    response = client.post("/image/resnet50", content=jpeg(5))
    assert response.status_code == 404
    assert "squeezenet" in response.json()["detail"]
    assert client.post("/v1/embed/vgg16", files=[("images", jpeg(5))]).status_code == 404


def test_body_over_the_limit_is_413(make_client):
    small = make_client(max_request_bytes=4096)
    response = small.post("/image/squeezenet", content=b"\xff" * 5000)
    assert response.status_code == 413 and "limit" in response.json()["detail"]

    def chunked():  # no Content-Length: the limit is enforced while reading
        for _ in range(10):
            yield b"\xff" * 1000
    response = small.post("/image/squeezenet", content=chunked())
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    assert small.post("/image/squeezenet", content=jpeg(6, (40, 30))).status_code == 200


def test_batch_api_keeps_order_and_reports_bad_items(client, local):
    images = [jpeg(10), b"not an image", jpeg(11, (500, 400)), png_claiming(10_000, 6_000)]
    response = client.post("/v1/embed/squeezenet",
                           files=[("images", (f"{i}.jpg", data, "image/jpeg"))
                                  for i, data in enumerate(images)])
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("model", "dim", "weights_id", "input_size")} == {
        "model": "squeezenet", "dim": 512, "weights_id": local.weights_id, "input_size": 227}
    results = body["results"]
    assert [next(iter(r)) for r in results] == ["embedding", "error", "embedding", "error"]
    assert "Pillow" in results[1]["error"] and "megapixel" in results[3]["error"]
    expected = local.embed_arrays(np.stack([decode_image(images[i], (227, 227))
                                            for i in (0, 2)]))
    got = np.array([results[0]["embedding"], results[2]["embedding"]], dtype=np.float32)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_batch_api_limits_and_bad_requests(client):
    nine = [("images", (f"{i}.jpg", jpeg(i, (16, 16)), "image/jpeg")) for i in range(9)]
    response = client.post("/v1/embed/squeezenet", files=nine)  # the fixture allows 8
    assert response.status_code == 413 and "at most 8" in response.json()["detail"]
    response = client.post("/v1/embed/squeezenet", files=[("other", jpeg(1))])
    assert response.status_code == 422 and "images" in response.json()["detail"]
    response = client.post("/v1/embed/squeezenet", content=jpeg(1),
                           headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 422 and "multipart" in response.json()["detail"]


def test_tokens(make_client):
    secured = make_client(tokens=[TOKEN])
    good = {"Authorization": f"Bearer {TOKEN}"}
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                    {"Authorization": f"Basic {TOKEN}"}):
        response = secured.post("/image/squeezenet", content=jpeg(1), headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert TOKEN not in response.text
    assert secured.get("/v1/models").status_code == 401
    assert secured.get("/metrics").status_code == 401
    assert secured.post("/v1/embed/squeezenet", files=[("images", jpeg(1))]).status_code == 401
    # probes need no token
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/readyz").status_code == 200
    assert secured.post("/image/squeezenet", content=jpeg(1), headers=good).status_code == 200
    assert secured.get("/v1/models", headers=good).status_code == 200
    # Orange's client cannot send headers: the token may be the first part of the path
    assert secured.post(f"/t/{TOKEN}/image/squeezenet?retry=1",
                        content=jpeg(1)).status_code == 200
    assert secured.post("/t/wrong-token-0123456789/image/squeezenet",
                        content=jpeg(1)).status_code == 401


def test_overload_is_503_with_retry_after(make_client):
    busy = make_client(max_pending_requests=2)
    busy.app.state.server.pending = 2  # two requests in progress
    try:
        response = busy.post("/image/squeezenet", content=jpeg(1))
    finally:
        busy.app.state.server.pending = 0
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert "busy" in response.json()["detail"]
    assert busy.get("/healthz").status_code == 200  # probes are not embedding requests
    assert busy.post("/image/squeezenet", content=jpeg(1)).status_code == 200


def test_timeout_is_504(make_client):
    slow = make_client(request_timeout_s=1e-4)
    response = slow.post("/image/squeezenet", content=jpeg(1, (2000, 1500)))
    assert response.status_code == 504 and "limit" in response.json()["detail"]


def test_metrics(client):
    client.post("/image/squeezenet", content=jpeg(20))
    client.post("/image/squeezenet", content=b"junk")
    text = client.get("/metrics").text
    for name in ('deepimage_requests_total{method="POST",route="/image/{model}",status="200"}',
                 'deepimage_request_seconds_bucket', 'deepimage_batch_size_bucket',
                 'deepimage_queue_depth{model="squeezenet"}', 'deepimage_ready 1.0',
                 'deepimage_images_embedded_total{model="squeezenet"}',
                 'deepimage_errors_total{kind="bad_image"}'):
        assert name in text, name
    bad = [line for line in text.splitlines()
           if line.startswith('deepimage_errors_total{kind="bad_image"}')]
    assert float(bad[0].split()[-1]) >= 1


def test_every_error_is_json(client):
    for response in (client.get("/nowhere"), client.put("/image/squeezenet"),
                     client.post("/image/squeezenet", content=b"x",
                                 headers={"Content-Length": "nonsense"})):
        assert response.status_code >= 400
        assert response.headers["content-type"].startswith("application/json")
        assert isinstance(response.json()["detail"], str)
