"""The wire protocols, one small object each, chosen by the server's description.

A protocol says how an image travels (``encode``), how a batch of uploads becomes
vectors or per-image reasons (``send``), and what identifies the server's weights
in the cache (``weights_identity``). The embedder it serves (``conn``) gives it
``url``, ``model``, ``weights_id``, ``post(address, **kwargs)`` (a request with
retries; :class:`~.errors.Rejected` for 413/422), ``check_vector(values)`` and
``weights_changed()``.
"""
from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from .errors import Rejected, ServerError

__all__ = ["WireProtocol", "BatchProtocol", "OrangeProtocol", "PROTOCOLS", "JPEG_QUALITY"]

JPEG_QUALITY = 75  # what Orange's own client sends

Answer = "np.ndarray | str"  # a vector, or the reason there is none


class WireProtocol:
    """What every protocol offers; see the module's docstring."""

    name = ""
    knows_dim = True  # False: the dimension is learnt from the first answer

    def weights_identity(self, conn) -> "str | None":
        raise NotImplementedError

    def encode(self, pixels: np.ndarray) -> bytes:
        raise NotImplementedError

    def send(self, conn, uploads: list[bytes]) -> "list[np.ndarray | str]":
        raise NotImplementedError

    def start(self, in_flight: int) -> None:
        """A run begins with up to ``in_flight`` batches on the wire."""

    def stop(self) -> None:
        """The run ended (or was cancelled): let go of what start took."""


class BatchProtocol(WireProtocol):
    """Our batch API: lossless PNGs, many per ``POST /v1/embed/{model}``."""

    name = "v1"

    def weights_identity(self, conn) -> "str | None":
        return conn.weights_id

    def encode(self, pixels: np.ndarray) -> bytes:
        out = io.BytesIO()  # lossless: vectors match local ones
        Image.fromarray(pixels, "RGB").save(out, format="PNG", compress_level=1)
        return out.getvalue()

    def send(self, conn, uploads: list[bytes]) -> "list[np.ndarray | str]":
        """Vectors (or per-image reasons) for PNG uploads, in order, from /v1/embed."""
        files = [("images", (f"{i}.png", data, "image/png")) for i, data in enumerate(uploads)]
        try:
            response = conn.post(f"{conn.url}/v1/embed/{conn.model}", files=files)
        except Rejected as exc:
            if len(uploads) == 1:
                return [f"refused by the server ({exc.status}: {exc.detail})"]
            half = len(uploads) // 2  # too many or too big together: send in halves
            return self.send(conn, uploads[:half]) + self.send(conn, uploads[half:])
        try:
            results = response.json()["results"]
        except Exception:
            raise ServerError(f"The server at {conn.url} sent an answer that is not a list "
                              f"of results.") from None
        weights_id = response.json().get("weights_id")
        if weights_id and conn.weights_id and weights_id != conn.weights_id:
            conn.weights_changed()
            raise ServerError(f"The server at {conn.url} changed the weights of {conn.model!r} "
                              f"during the run ({conn.weights_id} -> {weights_id}); vectors of "
                              f"different weights must not be mixed: embed again.")
        if len(results) != len(uploads):
            raise ServerError(f"The server at {conn.url} sent {len(results)} results for "
                              f"{len(uploads)} images.")
        out = []
        for item in results:
            if isinstance(item, dict) and "embedding" in item:
                out.append(conn.check_vector(item["embedding"]))
            else:
                reason = item.get("error") if isinstance(item, dict) else None
                out.append(f"the server could not embed it ({reason or 'no reason given'})")
        return out


class OrangeProtocol(WireProtocol):
    """Orange's protocol: one JPEG per ``POST /image/{model}``, several at once."""

    name = "orange"
    knows_dim = False

    def __init__(self):
        self._pool: "ThreadPoolExecutor | None" = None

    def weights_identity(self, conn) -> "str | None":
        return f"server={conn.url}"  # the weights behind it are unknown: the URL stands for them

    def encode(self, pixels: np.ndarray) -> bytes:
        out = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(out, format="JPEG", quality=JPEG_QUALITY)
        return out.getvalue()

    def send_one(self, conn, upload: bytes) -> "np.ndarray | str":
        try:
            response = conn.post(f"{conn.url}/image/{conn.model}", content=upload,
                                 headers={"Content-Type": "image/jpeg"})
        except Rejected as exc:
            return f"refused by the server ({exc.status}: {exc.detail})"
        try:
            return conn.check_vector(response.json()["embedding"])
        except Exception:
            return "the server's answer has no embedding"

    def send(self, conn, uploads: list[bytes]) -> "list[np.ndarray | str]":
        """One request per image (all Orange's protocol allows), several at once."""
        pool = self._pool
        if len(uploads) == 1 or pool is None:
            return [self.send_one(conn, u) for u in uploads]
        return list(pool.map(lambda upload: self.send_one(conn, upload), uploads))

    def start(self, in_flight: int) -> None:
        self._pool = ThreadPoolExecutor(4 * in_flight, thread_name_prefix="deepimage-orange")

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


PROTOCOLS = {"v1": BatchProtocol, "orange": OrangeProtocol}
