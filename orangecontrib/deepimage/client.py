"""Embed images on a remote embedding server (ours, or any speaking Orange's protocol).

The client does the cheap work and the server the expensive: files are read,
decoded and resized here with core.images (a bad file is skipped with its
reason and never sent), encoded losslessly (PNG) so the server's vectors equal
local ones, and streamed to ``POST /v1/embed/{model}`` in batches with a few
requests in flight. Transient failures (connection errors, 502/503/504) are
retried with backoff, honouring Retry-After. Vectors go to the same persistent
cache as local embedding, under the same key, so a re-run costs nothing and
local and remote vectors of the same weights are shared. Servers that speak
only Orange's protocol (``POST /image/{model}``, one JPEG per request) are
detected and used one image per request, concurrently.

No Qt and no Orange imports: the Image Embedder widget and the CLI both use it.
"""
from __future__ import annotations

import collections
import io
import ipaddress
import json
import logging
import os
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Iterable, Iterator, Sequence

import httpx
import numpy as np
from PIL import Image

from .core.cache import EmbeddingCache
from .core.embed import (BatchResult, Cancelled, EmbeddingResult, ProgressCallback,
                         StopCallback, _Step, gather, iter_steps, open_cache, prepare_source,
                         vector_cache_key)
from .core.images import DEFAULT_MAX_PIXELS, Skipped
from .core.models import MODELS, UnknownModel, get_spec

__all__ = ["RemoteEmbedder", "list_models", "read_token", "RemoteError", "AccessRefused",
           "ServerUnavailable", "UnknownRemoteModel", "ServerError"]

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({502, 503, 504})
MAX_RETRY_AFTER = 30.0  # seconds; a server asking for longer is treated as down
JPEG_QUALITY = 75  # what Orange's own client sends
TOKEN_VARIABLE = "DEEPIMAGE_SERVER_TOKEN"


class RemoteError(Exception):
    """Embedding on the server failed; ``str(error)`` says why and what to do."""


class AccessRefused(RemoteError):
    """401: the token is wrong or missing (or cannot be sent: not printable ASCII)."""


class ServerUnavailable(RemoteError):
    """Nothing answers at the URL, or the server stayed busy or failing after retries."""


class ServerError(RemoteError):
    """The server answered with an error that retrying will not fix."""


class UnknownRemoteModel(RemoteError, UnknownModel):
    """The server has no such model (also an UnknownModel, as for local embedding)."""

    def __str__(self) -> str:
        return str(self.args[0])


class _Rejected(Exception):
    """The server refused these images (413/422); split the batch or skip the image."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _base(url: str) -> str:
    """The server's base URL without a trailing slash (a path prefix is kept, as Orange does).

    Without a scheme: http:// for this computer (localhost, 127.x, [::1]), https:// for
    any other host, so a token never crosses a network in clear text unless the user
    writes http:// explicitly.
    """
    url = url.strip()
    if "://" not in url:
        host = httpx.URL("//" + url).host
        local = host == "localhost" or host.endswith(".localhost")
        try:
            local = local or ipaddress.ip_address(host).is_loopback
        except ValueError:
            pass
        url = ("http://" if local else "https://") + url
    return url.rstrip("/")


def _check_token(token: "str | None") -> None:
    """AccessRefused for a token an HTTP header cannot carry (the server refuses such
    tokens too): printable ASCII only, no spaces."""
    if token and not all("!" <= c <= "~" for c in token):
        raise AccessRefused("The access token has characters other than printable ASCII "
                            "(letters, digits, punctuation; no spaces or accents), so it "
                            "cannot be sent; copy it again from the server's operator.")


def read_token(path: "str | None" = None) -> "str | None":
    """A server's access token for scripts and the CLI: the text of the file ``path``
    when given, else $DEEPIMAGE_SERVER_TOKEN; None when that is empty or unset.

    Raises OSError when the file cannot be read.
    """
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or None
    return os.environ.get(TOKEN_VARIABLE) or None


def _headers(token: "str | None") -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _detail(response: httpx.Response) -> str:
    """The server's one-line reason for an error response."""
    try:
        detail = response.json().get("detail")
    except Exception:
        detail = None
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail) if detail else (response.text.strip()[:200] or response.reason_phrase)


def _retry_delay(response: "httpx.Response | None", attempt: int) -> float:
    """Seconds to wait before the next try: the server's Retry-After, else exponential backoff."""
    if response is not None:
        value = response.headers.get("Retry-After")
        if value:
            try:
                return min(max(float(value), 0.0), MAX_RETRY_AFTER)
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
    return min(0.25 * 2 ** attempt, 8.0) * (0.5 + random.random())


def _refused(url: str, token: "str | None") -> AccessRefused:
    if token:
        return AccessRefused(f"The server at {url} refused the access token: check that it "
                             f"is the server's current token.")
    return AccessRefused(f"The server at {url} refused the access token: it requires one; "
                         f"ask its operator for the token.")


def _unreachable(url: str, exc: Exception) -> ServerUnavailable:
    return ServerUnavailable(f"There is no embedding server at {url} ({type(exc).__name__}: "
                             f"{exc}); check the address and that the server is running.")


def _fetch_models(client: httpx.Client, url: str, token: "str | None",
                  retries: int) -> "list[dict] | None":
    """The server's /v1/models list, or None when it speaks only Orange's protocol."""
    response = _request(client, "GET", f"{url}/v1/models", url, token, retries)
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise ServerError(f"The server at {url} could not list its models "
                          f"({response.status_code}: {_detail(response)}).")
    try:
        models = response.json()["models"]
        assert isinstance(models, list)
    except Exception:
        raise ServerError(f"{url} answered /v1/models with something that is not a model "
                          f"list; is it an embedding server?") from None
    return models


def _request(client: httpx.Client, method: str, address: str, url: str, token: "str | None",
             retries: int, stop: "threading.Event | None" = None, **kwargs) -> httpx.Response:
    """One HTTP request with retries of transient failures; raises RemoteError for
    failures retrying cannot fix (401, nothing listening, still busy after ``retries``)."""
    headers = {**kwargs.pop("headers", {}), **_headers(token)}
    attempt = 0
    while True:
        response, error = None, None
        try:
            response = client.request(method, address, headers=headers, **kwargs)
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            error = exc
        if response is not None and response.status_code == 401:
            raise _refused(url, token)
        if response is not None and response.status_code not in TRANSIENT_STATUS:
            return response
        if attempt >= retries:
            if error is not None:
                if isinstance(error, httpx.ConnectError):
                    raise _unreachable(url, error)
                raise ServerUnavailable(f"The server at {url} did not answer ({type(error).__name__}"
                                        f": {error}) after {retries + 1} tries; try again later.")
            raise ServerUnavailable(
                f"The server at {url} is busy or failing ({response.status_code}: "
                f"{_detail(response)}) after {retries + 1} tries; try again later or send "
                f"fewer requests at once (in_flight).")
        delay = _retry_delay(response, attempt)
        log.info("Retrying %s in %.1f s (%s)", address, delay,
                 error if error is not None else response.status_code)
        attempt += 1
        if stop is not None:
            if stop.wait(delay):
                raise Cancelled()
        else:
            time.sleep(delay)


def list_models(url: str, token: "str | None" = None, timeout: float = 10.0,
                retries: int = 1) -> list[dict]:
    """The models a server offers, for a model chooser.

    Dicts with name, title, dim, input_size, device, weights_id, fine_tuned and
    protocol ("v1"). A server that speaks only Orange's protocol cannot list its
    models: then the registry's networks are listed with protocol "orange" and
    dim None (known after the first image).
    """
    base = _base(url)
    _check_token(token)
    with httpx.Client(timeout=timeout) as client:
        models = _fetch_models(client, base, token, retries)
    if models is None:
        return [{"name": spec.name, "title": spec.display_name, "dim": None,
                 "input_size": spec.input_size, "device": None, "weights_id": None,
                 "fine_tuned": False, "protocol": "orange"} for spec in MODELS.values()]
    return [{**model, "protocol": "v1"} for model in models]


def _pick(models: list[dict], name: str) -> "dict | None":
    """The server's entry for ``name``: exact first, then by the registry's aliases."""
    for model in models:
        if model.get("name") == name:
            return model
    try:
        canonical = get_spec(name).name
    except UnknownModel:
        return None
    return next((m for m in models if m.get("name") == canonical), None)


class RemoteEmbedder:
    """Embeds on a server with the surface of core.embed.Embedder.

    ``embed(sources, progress, should_stop)`` returns an EmbeddingResult; cancel
    raises core.embed.Cancelled and keeps what was cached. The server is asked
    about the model when the embedder is made; when it cannot be reached, what
    it said last time (remembered beside the cache) is used, so images in the
    cache still embed with the server down.
    """

    backend = "remote"

    def __init__(self, url: str, model: str = "squeezenet", *, token: "str | None" = None,
                 cache: "EmbeddingCache | bool | str | os.PathLike | None" = True,
                 batch_size: int = 16, in_flight: int = 4, timeout: float = 60,
                 retries: int = 3, max_pixels: int = DEFAULT_MAX_PIXELS, crop: bool = False,
                 workers: "int | None" = None):
        if batch_size < 1 or in_flight < 1 or retries < 0:
            raise ValueError("batch_size and in_flight must be at least 1, retries at least 0")
        self.url = _base(url)
        _check_token(token)
        self.token = token or None
        self.batch_size = batch_size
        self.in_flight = in_flight
        self.timeout = timeout
        self.retries = retries
        self.max_pixels = max_pixels
        self.crop = crop
        self.workers = workers or min(8, os.cpu_count() or 2)
        self.cache = open_cache(cache)
        address = httpx.URL(self.url)
        self.device = f"server: {address.host}:{address.port or (443 if address.scheme == 'https' else 80)}"
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=4 * in_flight + 4,
                                max_keepalive_connections=4 * in_flight + 4))
        self._stop = threading.Event()
        self._asked = model
        self._stale = False  # the server's weights changed since it described the model
        self._use_cache = self.cache
        self._adopt(self._describe(model))

    def _adopt(self, info: dict) -> None:
        """Take the server's description of the model: sizes, weights, cache key."""
        model, crop = self._asked, self.crop
        self.cache = self._use_cache
        self.model: str = info["name"]
        self.title: str = info.get("title") or self.model
        self.display_name = self.title  # what summaries call the network, as spec.display_name
        self.dim: "int | None" = info.get("dim")
        self.input_size: int = int(info["input_size"])
        self.weights_id: "str | None" = info.get("weights_id")
        self.server_device: "str | None" = info.get("device")
        self.fine_tuned: bool = bool(info.get("fine_tuned"))
        self.protocol: str = info["protocol"]
        if self.protocol == "v1":
            self.cache_key = vector_cache_key(self.model, self.weights_id, self.input_size, crop)
        else:  # the weights behind Orange's protocol are unknown: the URL stands for them
            self.cache_key = vector_cache_key(self.model, f"server={self.url}",
                                              self.input_size, crop)
        if self.cache_key is None:
            self.cache = None  # weights without an identity: nothing worth keeping
        if self.protocol == "orange" and self.dim is None:
            self.dim = self._probe_dim()
        self._remember(model, info)

    # -- what the server offers -------------------------------------------------------

    def _memory_file(self) -> "str | None":
        if self._use_cache is None:
            return None
        return os.path.join(os.path.dirname(os.fspath(self._use_cache.path)),
                            "remote-models.json")

    def _recall(self, model: str) -> "dict | None":
        path = self._memory_file()
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f).get(f"{self.url}|{model}")
        except (OSError, TypeError, ValueError, AttributeError):
            return None

    def _remember(self, model: str, info: dict) -> None:
        """Keep what the server said about ``model``, for runs when it is down."""
        path = self._memory_file()
        if path is None:
            return
        try:
            try:
                with open(path, encoding="utf-8") as f:
                    known = json.load(f)
            except (OSError, ValueError):
                known = {}
            known[f"{self.url}|{model}"] = {**info, "dim": self.dim}
            tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.part"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(known, f)
            os.replace(tmp, path)
        except OSError as exc:
            log.debug("Could not remember the server's model description: %s", exc)

    def _describe(self, model: str) -> dict:
        """The server's description of ``model`` (protocol "v1" or "orange")."""
        try:
            models = _fetch_models(self._client, self.url, self.token, self.retries)
        except ServerUnavailable as exc:
            remembered = self._recall(model)
            if remembered is None:
                raise
            log.warning("%s Using the model description from the last run, so cached "
                        "images still embed.", exc)
            self._offline = exc
            return remembered
        self._offline = None
        deadline = time.monotonic() + self.timeout
        while models is not None and _pick(models, model) is None:
            loading = self._loading()  # a starting server lists only the models it has loaded
            if loading is None:
                break
            if time.monotonic() + loading > deadline:
                raise ServerUnavailable(f"The server at {self.url} is still loading its models; "
                                        f"try again in a minute.")
            time.sleep(loading)
            models = _fetch_models(self._client, self.url, self.token, self.retries)
        if models is None:
            try:
                spec = get_spec(model)
            except UnknownModel:
                raise UnknownRemoteModel(
                    f"The server at {self.url} speaks only Orange's protocol, and this "
                    f"client does not know the input size of {model!r}; choose one of: "
                    f"{', '.join(MODELS)}.") from None
            return {"name": spec.name, "title": spec.display_name, "dim": None,
                    "input_size": spec.input_size, "device": None, "weights_id": None,
                    "fine_tuned": False, "protocol": "orange"}
        info = _pick(models, model)
        if info is None:
            names = ", ".join(str(m.get("name")) for m in models) or "none"
            raise UnknownRemoteModel(f"The server at {self.url} has no model {model!r}; "
                                     f"it offers: {names}.")
        return {**info, "protocol": "v1"}

    def _loading(self) -> "float | None":
        """Seconds to wait when /readyz says the server is still loading (503 with
        Retry-After), else None."""
        try:
            response = self._client.get(f"{self.url}/readyz")
        except httpx.HTTPError:
            return None
        if response.status_code != 503 or "Retry-After" not in response.headers:
            return None
        return max(0.2, _retry_delay(response, 0))

    def _probe_dim(self) -> int:
        """Orange's protocol cannot list models: the first answer gives the dimension."""
        grey = np.full((self.input_size, self.input_size, 3), 128, np.uint8)
        answer = self._send_orange([self._encode(grey)])[0]
        if isinstance(answer, str):
            raise ServerError(f"The server at {self.url} could not embed a test image with "
                              f"{self.model!r}: {answer}")
        return int(answer.shape[0])

    # -- one image: read, hash, look up, decode, encode (in worker threads) -----------

    def _encode(self, pixels: np.ndarray) -> bytes:
        out = io.BytesIO()
        image = Image.fromarray(pixels, "RGB")
        if self.protocol == "v1":
            image.save(out, format="PNG", compress_level=1)  # lossless: vectors match local ones
        else:
            image.save(out, format="JPEG", quality=JPEG_QUALITY)
        return out.getvalue()

    def _prepare(self, source: str):
        """(content hash, cached vector or None, encoded upload or None); ImageError if bad."""
        key, vector, pixels = prepare_source(source, self.cache, self.cache_key,
                                             self.input_size, self.max_pixels, self.crop)
        return key, vector, None if pixels is None else self._encode(pixels)

    # -- requests (in the request threads) --------------------------------------------

    def _post(self, address: str, **kwargs) -> httpx.Response:
        response = _request(self._client, "POST", address, self.url, self.token,
                            self.retries, self._stop, **kwargs)
        if response.status_code == 404:
            raise UnknownRemoteModel(f"The server at {self.url} has no model {self.model!r} "
                                     f"({_detail(response)}).")
        if response.status_code in (413, 422):
            raise _Rejected(response.status_code, _detail(response))
        if response.status_code != 200:
            raise ServerError(f"The server at {self.url} failed ({response.status_code}: "
                              f"{_detail(response)}).")
        return response

    def _vector(self, values) -> "np.ndarray | str":
        """A checked vector, or the reason it is not one."""
        try:
            vector = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError):
            return "the server sent something that is not an embedding"
        if vector.ndim != 1 or (self.dim is not None and vector.shape[0] != self.dim) \
                or not np.isfinite(vector).all():
            return f"the server sent an embedding of shape {vector.shape}, expected ({self.dim},)"
        return vector

    def _send_v1(self, uploads: list[bytes]) -> "list[np.ndarray | str]":
        """Vectors (or per-image reasons) for PNG uploads, in order, from /v1/embed."""
        files = [("images", (f"{i}.png", data, "image/png")) for i, data in enumerate(uploads)]
        try:
            response = self._post(f"{self.url}/v1/embed/{self.model}", files=files)
        except _Rejected as exc:
            if len(uploads) == 1:
                return [f"refused by the server ({exc.status}: {exc.detail})"]
            half = len(uploads) // 2  # too many or too big together: send in halves
            return self._send_v1(uploads[:half]) + self._send_v1(uploads[half:])
        try:
            results = response.json()["results"]
        except Exception:
            raise ServerError(f"The server at {self.url} sent an answer that is not a list "
                              f"of results.") from None
        weights_id = response.json().get("weights_id")
        if weights_id and self.weights_id and weights_id != self.weights_id:
            self._stale = True
            raise ServerError(f"The server at {self.url} changed the weights of {self.model!r} "
                              f"during the run ({self.weights_id} -> {weights_id}); vectors of "
                              f"different weights must not be mixed: embed again.")
        if len(results) != len(uploads):
            raise ServerError(f"The server at {self.url} sent {len(results)} results for "
                              f"{len(uploads)} images.")
        out = []
        for item in results:
            if isinstance(item, dict) and "embedding" in item:
                out.append(self._vector(item["embedding"]))
            else:
                reason = item.get("error") if isinstance(item, dict) else None
                out.append(f"the server could not embed it ({reason or 'no reason given'})")
        return out

    def _send_one_orange(self, upload: bytes) -> "np.ndarray | str":
        try:
            response = self._post(f"{self.url}/image/{self.model}", content=upload,
                                  headers={"Content-Type": "image/jpeg"})
        except _Rejected as exc:
            return f"refused by the server ({exc.status}: {exc.detail})"
        try:
            return self._vector(response.json()["embedding"])
        except Exception:
            return "the server's answer has no embedding"

    def _send_orange(self, uploads: list[bytes]) -> "list[np.ndarray | str]":
        """One request per image (all Orange's protocol allows), several at once."""
        if len(uploads) == 1 or self._orange_pool is None:
            return [self._send_one_orange(u) for u in uploads]
        return list(self._orange_pool.map(self._send_one_orange, uploads))

    _orange_pool: "ThreadPoolExecutor | None" = None

    def _embed_step(self, step: _Step, sources: Sequence[str]) -> _Step:
        """Send a step's uploads, cache the vectors, turn per-image failures into skips.

        Returns a step whose ``images`` are the vectors, in the order of its ``indices``."""
        if not step.images:
            return step
        send = self._send_v1 if self.protocol == "v1" else self._send_orange
        answers = send(step.images)
        if self.protocol == "orange" and self.dim is None:
            self.dim = next((len(a) for a in answers if not isinstance(a, str)), None)
        done = _Step(cached_indices=step.cached_indices, cached_vectors=step.cached_vectors,
                     skipped=list(step.skipped))
        for index, key, answer in zip(step.indices, step.keys, answers):
            if isinstance(answer, str):
                done.skipped.append(Skipped(index, sources[index], answer))
            else:
                done.indices.append(index)
                done.keys.append(key)
                done.images.append(answer)
        if self.cache is not None and done.images:
            self.cache.put_many(self.cache_key, zip(done.keys, done.images))
        return done

    # -- the pipeline -------------------------------------------------------------------

    def iter_embed(self, sources: Sequence[str], progress: "ProgressCallback | None" = None,
                   should_stop: "StopCallback | None" = None) -> Iterator[BatchResult]:
        """Embed ``sources`` batch by batch, in input order; see Embedder.iter_embed.

        Decoding runs ``workers`` threads ahead; up to ``in_flight`` requests are
        on the wire at once. Raises Cancelled when ``should_stop()`` turns true.
        """
        sources = [os.fspath(s) for s in sources]
        if self._stale:  # ask again, so that the new weights get their own cache entries
            self._adopt(self._describe(self._asked))
            self._stale = False
        self._stop.clear()
        window = max(2 * self.batch_size * self.in_flight, 4 * self.workers)
        sending: collections.deque[tuple[Future, int]] = collections.deque()
        taken = 0  # inputs put into steps
        steps = iter_steps(sources, self._prepare, self.batch_size, self.workers, window)
        send_pool = ThreadPoolExecutor(self.in_flight, thread_name_prefix="deepimage-send")
        if self.protocol == "orange":
            self._orange_pool = ThreadPoolExecutor(4 * self.in_flight,
                                                   thread_name_prefix="deepimage-orange")

        def stopping() -> bool:
            return should_stop is not None and should_stop()

        try:
            while taken < len(sources) or sending:
                if stopping():
                    raise Cancelled()
                while taken < len(sources) and len(sending) < self.in_flight:
                    step = next(steps)
                    taken += step.handled
                    if step.images and self._offline is not None:
                        raise self._offline  # images to send, and no server
                    sending.append((send_pool.submit(self._embed_step, step, sources), taken))
                future, done = sending.popleft()
                while not future.done():  # wait, but notice a cancel promptly
                    wait_futures([future], timeout=0.1)
                    if stopping():
                        raise Cancelled()
                step = future.result()
                vectors = np.stack(step.images) if step.images else None
                result = step.result(vectors, done, self.dim or 0)
                if progress is not None:
                    progress(done, len(sources))
                yield result
        finally:
            self._stop.set()  # ends retry waits in the request threads
            for future, _ in sending:
                future.cancel()
            steps.close()  # cancels the decoding still queued
            send_pool.shutdown(wait=False, cancel_futures=True)
            if self._orange_pool is not None:
                self._orange_pool.shutdown(wait=False, cancel_futures=True)
                self._orange_pool = None

    def embed(self, sources: Iterable[str], progress: "ProgressCallback | None" = None,
              should_stop: "StopCallback | None" = None) -> EmbeddingResult:
        """Embed all ``sources`` on the server (or from the cache); see iter_embed."""
        sources = [os.fspath(s) for s in sources]
        return gather(sources, self.model, lambda: self.dim or 0,
                      self.iter_embed(sources, progress, should_stop))

    def close(self) -> None:
        """Close the connections to the server."""
        self._client.close()

    def __enter__(self) -> "RemoteEmbedder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteEmbedder({self.url!r}, {self.model!r}, protocol={self.protocol!r})"
