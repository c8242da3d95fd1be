"""A small stand-in embedding server that follows the API contract, for client tests.

Real HTTP (uvicorn on 127.0.0.1) and real embeddings (core.Embedder), with knobs
the real server does not have: speak only Orange's protocol, fail the first k
requests with 503 + Retry-After, refuse batches over a size, count what it received.
"""
from __future__ import annotations

import secrets
import socket
import threading
import time

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from orangecontrib.deepimage.core.images import ImageError, decode_image

from live_server import LiveServer


class Knobs:
    """What the stand-in does; tests change it between requests."""

    def __init__(self, *, v1: bool = True, token: "str | None" = None, fail_first: int = 0,
                 retry_after: str = "0", max_images: int = 64,
                 weights_id: "str | None" = None):
        self.v1 = v1
        self.token = token
        self.fail_first = fail_first
        self.retry_after = retry_after
        self.max_images = max_images
        self.weights_id = weights_id  # None: the embedder's own
        self.requests = 0  # POSTs received, failed ones included
        self.images = 0  # images embedded
        self.lock = threading.Lock()


def make_app(embedder, knobs: Knobs) -> FastAPI:
    app = FastAPI()
    spec = embedder.spec

    def weights_id() -> str:
        return knobs.weights_id or embedder.weights_id

    def error(status: int, detail: str, **headers) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    def refused(request: Request) -> "JSONResponse | None":
        if knobs.token is None:
            return None
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {knobs.token}".encode()):
            return error(401, "missing or wrong access token")
        return None

    def count_and_maybe_fail() -> "JSONResponse | None":
        with knobs.lock:
            knobs.requests += 1
            if knobs.fail_first > 0:
                knobs.fail_first -= 1
                return error(503, "busy", **{"Retry-After": knobs.retry_after})
        return None

    def gate(request: Request, model: str) -> "JSONResponse | None":
        """What both embed routes answer before embedding: token, busy, unknown model."""
        if (bad := refused(request)) is not None:
            return bad
        if (busy := count_and_maybe_fail()) is not None:
            return busy
        if model != spec.name:
            return error(404, f"unknown model {model!r}")
        return None

    def embed(blobs: list[bytes]) -> list:
        out, good, where = [], [], []
        for blob in blobs:
            try:
                good.append(decode_image(blob, spec.input_shape))
                where.append(len(out))
                out.append(None)
            except ImageError as exc:
                out.append({"error": str(exc)})
        if good:
            vectors = embedder.embed_arrays(np.stack(good))
            for i, vector in zip(where, vectors):
                out[i] = {"embedding": vector.tolist()}
        with knobs.lock:
            knobs.images += len(good)
        return out

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz():
        return {"status": "ready"}

    @app.get("/v1/models")
    def models(request: Request):
        if not knobs.v1:
            return error(404, "Not Found")
        if (bad := refused(request)) is not None:
            return bad
        return {"models": [{"name": spec.name, "title": spec.display_name, "dim": embedder.dim,
                            "input_size": spec.input_size, "device": "cpu",
                            "weights_id": weights_id(), "fine_tuned": False}]}

    @app.post("/v1/embed/{model}")
    async def embed_many(model: str, request: Request):
        if not knobs.v1:
            return error(404, "Not Found")
        if (stop := gate(request, model)) is not None:
            return stop
        form = await request.form()
        parts = form.getlist("images")
        if not parts:
            return error(422, "no images")
        if len(parts) > knobs.max_images:
            return error(413, f"at most {knobs.max_images} images per request")
        blobs = [await part.read() for part in parts]
        return {"model": spec.name, "dim": embedder.dim, "weights_id": weights_id(),
                "input_size": spec.input_size, "results": embed(blobs)}

    @app.post("/image/{model}")
    async def embed_one(model: str, request: Request):
        if (stop := gate(request, model)) is not None:
            return stop
        result = embed([await request.body()])[0]
        if "error" in result:
            return error(422, result["error"])
        return result

    return app


class StandInServer:
    """uvicorn serving the stand-in in a thread; ``url`` once started."""

    def __init__(self, embedder, knobs: "Knobs | None" = None):
        self.knobs = knobs or Knobs()
        self.app = make_app(embedder, self.knobs)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning",
                                                    limit_concurrency=200))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def start(self) -> "StandInServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the stand-in server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def cosine(a, b):
    """Row-wise cosine similarity of two matrices."""
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


class RealServer(LiveServer):
    """`deepimage serve` (torch backend, quiet log) on a free loopback port."""

    def __init__(self, log_dir, *options: str):
        super().__init__(log_dir, "--backend", "torch", "--log-level", "warning", *options)
