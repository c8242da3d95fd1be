"""A real `deepimage serve`: formats it does not decode get 415, and what its decode
threads hold at once is bounded by --decode-budget-pixels (503 with Retry-After)."""
from __future__ import annotations

import io
import time

import httpx
import pytest
from PIL import Image

from live_server import LiveServer
from server_helpers import jpeg


def big_png() -> bytes:
    """A 4000 x 4000 16-bit PNG of zeros: 60 KiB that decode to 32 MB."""
    buf = io.BytesIO()
    Image.new("I;16", (4000, 4000), 0).save(buf, "PNG")
    return buf.getvalue()


def eps() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 30, 30)).save(buf, "EPS")
    return buf.getvalue()


@pytest.fixture(scope="module")
def tight_server(tmp_path_factory):
    """A server whose decode budget is one pixel (so one image decodes at a time) and
    whose decodes wait at most 10 ms for it."""
    folder = tmp_path_factory.mktemp("decode-limits")
    server = LiveServer(folder, "--models", "squeezenet", "--decode-threads", "2",
                        env={"DEEPIMAGE_SERVER_DECODE_BUDGET_PIXELS": "1",
                             "DEEPIMAGE_SERVER_DECODE_BUDGET_WAIT_S": "0.01"}).wait_ready()
    try:
        yield server.url
    finally:
        server.stop()


def test_unsupported_format_is_415_and_a_per_image_error(tight_server):
    response = httpx.post(f"{tight_server}/image/squeezenet", content=eps(),
                          headers={"Content-Type": "application/postscript"}, timeout=30)
    assert response.status_code == 415, response.text
    assert "unsupported format: EPS" in response.json()["detail"]
    response = httpx.post(f"{tight_server}/v1/embed/squeezenet", timeout=30,
                          files=[("images", jpeg(1)), ("images", eps())])
    assert response.status_code == 200
    ok, refused = response.json()["results"]
    assert "embedding" in ok and refused["error"].startswith("unsupported format: EPS")
    metrics = httpx.get(f"{tight_server}/metrics").text
    assert 'deepimage_errors_total{kind="unsupported_format"} 2.0' in metrics


def embed_until_accepted(url: str, files, deadline_s: float = 30) -> httpx.Response:
    """Retry on 503 as a client does (the budget may still be held by a decode that
    outlived its request)."""
    deadline = time.monotonic() + deadline_s
    while True:
        response = httpx.post(url, files=files, timeout=60)
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(float(response.headers.get("Retry-After", "1")) / 4)


def test_decodes_over_the_budget_wait_then_get_503(tight_server):
    url = f"{tight_server}/v1/embed/squeezenet"
    data = big_png()
    # two big images decode in two threads; the second finds the budget full for 10 ms
    response = httpx.post(url, files=[("images", data), ("images", data)], timeout=60)
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert "busy decoding" in response.json()["detail"]
    # one at a time fits (an image larger than the budget decodes alone)
    response = embed_until_accepted(url, [("images", data)])
    assert response.status_code == 200, response.text
    assert "embedding" in response.json()["results"][0]
    metrics = httpx.get(f"{tight_server}/metrics").text
    assert 'deepimage_errors_total{kind="overloaded"}' in metrics
