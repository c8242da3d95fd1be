"""RemoteEmbedder: the shared pipeline (core.pipeline) with a remote server as runner.

The client does the cheap work and the server the expensive: files are read,
decoded and resized here (a bad file is skipped with its reason and never sent),
encoded losslessly (PNG) so the server's vectors equal local ones, and streamed to
``POST /v1/embed/{model}`` in batches with a few requests in flight. Servers that
speak only Orange's protocol (``POST /image/{model}``, one JPEG per request) are
used one image per request, concurrently. What the server said about a model is
remembered beside the cache, so cached images embed with the server down.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Iterable, Iterator, Sequence

import httpx
import numpy as np

from ..core.atomic import atomic_path
from ..core.cache import EmbeddingCache
from ..core.images import DEFAULT_MAX_PIXELS, Skipped
from ..core.loopback import http_client, url_host
from ..core.models import MODELS, UnknownModel, get_spec
from ..core.pipeline import (BatchResult, EmbeddingResult, Prepared, ProgressCallback, Step,
                             StepRunner, StopCallback, gather, open_cache, prepare_source,
                             run_steps, vector_cache_key)
from .discovery import pick_model
from .protocols import PROTOCOLS, WireProtocol
from .errors import (Rejected, ServerError, ServerUnavailable, UnknownRemoteModel, base_url,
                     check_token)
from .transport import error_detail, fetch_models, request, retry_delay

__all__ = ["RemoteEmbedder"]

log = logging.getLogger(__name__)

class RemoteEmbedder(StepRunner):
    """Embeds on a server with the surface of core.local_embedder.Embedder.

    It is the :class:`~..core.pipeline.StepRunner` that ``run_steps`` drives, with
    ``in_flight`` steps on the wire at once.

    ``embed(sources, progress, should_stop)`` returns an EmbeddingResult; cancel
    raises core.cancel.Cancelled and keeps what was cached. The server is asked
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
        self.url = base_url(url)
        check_token(token)
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
        port = address.port or (443 if address.scheme == "https" else 80)
        self.device = f"server: {url_host(address.host)}:{port}"
        self._client = http_client(
            self.url,
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
        self.wire: WireProtocol = PROTOCOLS[self.protocol]()
        self.cache_key = vector_cache_key(self.model, self.wire.weights_identity(self),
                                          self.input_size, crop)
        if self.cache_key is None:
            self.cache = None  # weights without an identity: nothing worth keeping
        if not self.wire.knows_dim and self.dim is None:
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
            with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
                json.dump(known, f)
        except OSError as exc:
            log.debug("Could not remember the server's model description: %s", exc)

    def _describe(self, model: str) -> dict:
        """The server's description of ``model`` (protocol "v1" or "orange")."""
        try:
            models = fetch_models(self._client, self.url, self.token, self.retries)
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
        while models is not None and pick_model(models, model) is None:
            loading = self._loading()  # a starting server lists only the models it has loaded
            if loading is None:
                break
            if time.monotonic() + loading > deadline:
                raise ServerUnavailable(f"The server at {self.url} is still loading its models; "
                                        f"try again in a minute.")
            time.sleep(loading)
            models = fetch_models(self._client, self.url, self.token, self.retries)
        if models is None:
            try:
                spec = get_spec(model)
            except UnknownModel:
                raise UnknownRemoteModel(
                    f"The server at {self.url} speaks only Orange's protocol, and this "
                    f"client does not know the input size of {model!r}; choose one of: "
                    f"{', '.join(MODELS)}.") from None
            return {**spec.describe(), "protocol": "orange"}
        info = pick_model(models, model)
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
        return max(0.2, retry_delay(response, 0))

    def _probe_dim(self) -> int:
        """Orange's protocol cannot list models: the first answer gives the dimension."""
        grey = np.full((self.input_size, self.input_size, 3), 128, np.uint8)
        answer = self.wire.send(self, [self.wire.encode(grey)])[0]
        if isinstance(answer, str):
            raise ServerError(f"The server at {self.url} could not embed a test image with "
                              f"{self.model!r}: {answer}")
        return int(answer.shape[0])

    # -- one image: read, hash, look up, decode, encode (in worker threads) -----------

    def _prepare(self, source: str) -> Prepared:
        """The source's cached vector, or its encoded upload; ImageError if bad."""
        prepared = prepare_source(source, self.cache, self.cache_key,
                                  self.input_size, self.max_pixels, self.crop)
        if prepared.image is None:
            return prepared
        return prepared._replace(image=self.wire.encode(prepared.image))

    # -- requests (in the request threads) --------------------------------------------

    def post(self, address: str, **kwargs) -> httpx.Response:
        """A POST with retries (for the wire protocols): RemoteError for failures retrying
        cannot fix, Rejected for images the server refuses (413/422)."""
        response = request(self._client, "POST", address, self.url, self.token,
                            self.retries, self._stop, **kwargs)
        if response.status_code == 404:
            raise UnknownRemoteModel(f"The server at {self.url} has no model {self.model!r} "
                                     f"({error_detail(response)}).")
        if response.status_code in (413, 422):
            raise Rejected(response.status_code, error_detail(response))
        if response.status_code != 200:
            raise ServerError(f"The server at {self.url} failed ({response.status_code}: "
                              f"{error_detail(response)}).")
        return response

    def check_vector(self, values) -> "np.ndarray | str":
        """A checked vector, or the reason it is not one."""
        try:
            vector = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError):
            return "the server sent something that is not an embedding"
        if vector.ndim != 1 or (self.dim is not None and vector.shape[0] != self.dim) \
                or not np.isfinite(vector).all():
            return f"the server sent an embedding of shape {vector.shape}, expected ({self.dim},)"
        return vector

    def weights_changed(self) -> None:
        """The server's weights changed during a run: describe the model again next run."""
        self._stale = True

    def run_step(self, step: Step, done: int) -> BatchResult:
        """Send a step's uploads, cache the vectors, turn per-image failures into skips
        (runs in a request thread)."""
        if not step.images:
            return step.result(None, done, self.dim or 0)
        answers = self.wire.send(self, step.images)
        if not self.wire.knows_dim and self.dim is None:
            self.dim = next((len(a) for a in answers if not isinstance(a, str)), None)
        sent = Step(cached_indices=step.cached_indices, cached_vectors=step.cached_vectors,
                    skipped=list(step.skipped))
        for index, source, key, answer in zip(step.indices, step.sources, step.keys, answers):
            if isinstance(answer, str):
                sent.skipped.append(Skipped(index, source, answer))
            else:
                sent.indices.append(index)
                sent.keys.append(key)
                sent.images.append(answer)
        if self.cache is not None and sent.images:
            self.cache.put_many(self.cache_key, zip(sent.keys, sent.images))
        vectors = np.stack(sent.images) if sent.images else None
        return sent.result(vectors, done, self.dim or 0)

    def check_step(self, step: Step) -> None:
        if step.images and self._offline is not None:
            raise self._offline  # images to send, and no server

    def start(self) -> None:
        self._stop.clear()
        self.wire.start(self.in_flight)

    def stop(self) -> None:
        self._stop.set()  # ends retry waits in the request threads
        self.wire.stop()

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
        return run_steps(sources, self._prepare, self, self.batch_size, self.workers,
                         progress, should_stop)

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
