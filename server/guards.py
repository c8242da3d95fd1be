"""What every request goes through: Host check, body limits, admission, log and metrics.

- Host: a server that trusts whoever connects (loopback without tokens) answers only
  requests for a local name (``localhost``, 127.x, ``[::1]``) or an ``--allowed-hosts``
  name (421 otherwise), and refuses a browser's cross-site request (an ``Origin`` that
  is not such a name: 403). So a web page cannot reach it through DNS rebinding or a
  cross-site POST. No CORS headers are ever sent.
- Body size: a Content-Length over ``max_request_bytes`` is refused (413) before
  anything is read; a body that grows past it while streaming (chunked) is cut off
  with 413 too.
- Memory in total: the bodies of all requests together stay within
  ``max_buffered_bytes`` (a declared Content-Length is reserved up front); beyond it
  the answer is 503 with Retry-After.
- A response sent before the request's body was read to its end (413, 401, 404, ...)
  says ``Connection: close``: uvicorn then closes the connection instead of reading
  and throwing away whatever the client goes on sending (an endless chunked body).
- Admission (:func:`admit`, a dependency of the embedding routes): at most
  ``max_pending_requests`` embedding requests at once; beyond that 503 with
  Retry-After at once, never a queue that grows without bound.
- Request log and metrics use the route template (never the raw path, so the token of
  ``/t/<token>/image/...`` is never written) and a method from a fixed set ("other"
  for the rest), so a client cannot create new metric series.
"""
from __future__ import annotations

import logging
import time
from typing import AsyncIterator
from urllib.parse import urlsplit

from .errors import ApiError, error_response
from .state import ServerState, StateDep

__all__ = ["GuardMiddleware", "admit", "METHODS"]

log = logging.getLogger("orangecontrib.deepimage.server.access")

# the methods the metrics name; any other is counted as "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
CLOSE = (b"connection", b"close")


async def admit(state: StateDep) -> AsyncIterator[None]:
    """Dependency of the embedding routes: a slot among ``max_pending_requests``, or 503."""
    if state.pending >= state.settings.max_pending_requests:
        raise ApiError(503, f"The server is busy ({state.pending} requests in progress); "
                            f"retry in a moment.", "overloaded", {"Retry-After": "1"})
    state.pending += 1
    state.metrics.pending_requests.set(state.pending)
    try:
        yield
    finally:
        state.pending -= 1
        state.metrics.pending_requests.set(state.pending)


class GuardMiddleware:
    """Host check, body limits (per request and in total), the request log and metrics."""

    def __init__(self, app, state: ServerState):
        self.app = app
        self.state = state
        self.settings = state.settings
        self.metrics = state.metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        headers = dict(scope.get("headers") or ())
        # a request without Transfer-Encoding and without a Content-Length above 0 has no
        # body; any other has been read to its end when the last receive() says so
        length = headers.get(b"content-length", b"0").strip()
        body = {"done": b"transfer-encoding" not in headers and length in (b"0", b"")}
        status = {"code": 500}

        async def guarded_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                if not body["done"]:  # the rest of the body is never read: close
                    message = {**message, "headers": [*message.get("headers", ()), CLOSE]}
            await send(message)

        try:
            await self._handle(scope, headers, body, receive, guarded_send)
        finally:
            self._record(scope, status["code"], time.perf_counter() - start)

    async def _refuse(self, scope, receive, send, exc: ApiError) -> None:
        self.metrics.error(exc.kind)
        await error_response(exc.status, exc.detail, exc.headers)(scope, receive, send)

    async def _handle(self, scope, headers, body, receive, send):
        problem = self._host_problem(headers)
        if problem is not None:
            return await self._refuse(scope, receive, send, problem)
        limit = self.settings.max_request_bytes
        declared = 0
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0:
                return await self._refuse(scope, receive, send, ApiError(
                    400, "Content-Length is not a number.", "bad_request"))
            if declared > limit:
                return await self._refuse(scope, receive, send, ApiError(
                    413, self._too_large(declared), "body_too_large"))
        state = self.state
        if declared and state.buffered + declared > self.settings.max_buffered_bytes:
            return await self._refuse(scope, receive, send, self._buffers_full())
        state.buffered += declared
        held = declared  # bytes of this request counted in state.buffered
        received = 0

        async def limited_receive():
            nonlocal received, held
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if not message.get("more_body", False):
                    body["done"] = True
                if received > limit:
                    raise ApiError(413, self._too_large(received), "body_too_large")
                if received > held:  # chunked: counted as it comes
                    if state.buffered + received - held > self.settings.max_buffered_bytes:
                        raise self._buffers_full()
                    state.buffered += received - held
                    held = received
            return message

        try:
            await self.app(scope, limited_receive, send)
        except ApiError as exc:  # raised while no route handler could catch it
            await self._refuse(scope, receive, send, exc)
        finally:
            state.buffered -= held

    def _host_problem(self, headers) -> "ApiError | None":
        """421 for a Host that is not this computer's, 403 for a cross-site Origin."""
        if not self.state.checks_host:
            return None
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.settings.host_allowed(host):
            return ApiError(421, f"This server answers requests for localhost only, not for "
                                 f"the host {host[:100]!r}; a proxy in front of it needs "
                                 f"`deepimage serve --allowed-hosts NAME`.", "bad_host")
        origin = headers.get(b"origin")
        if origin is not None:
            origin = origin.decode("latin-1")
            netloc = urlsplit(origin).netloc if "://" in origin else ""
            if not self.settings.host_allowed(netloc):
                return ApiError(403, f"Requests from web pages of other sites ({origin[:100]!r}) "
                                     f"are refused.", "bad_host")
        return None

    def _buffers_full(self) -> ApiError:
        return ApiError(503, f"The server is busy: the requests in progress hold "
                             f"{self.state.buffered:,} bytes, its limit is "
                             f"{self.settings.max_buffered_bytes:,}; retry in a moment.",
                        "overloaded", {"Retry-After": "1"})

    def _too_large(self, size: int) -> str:
        return (f"The request body is over the server's limit of "
                f"{self.settings.max_request_bytes:,} bytes ({size:,} bytes or more); send "
                f"smaller images or fewer per request.")

    def _record(self, scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "(no route)"
        method = scope["method"] if scope["method"] in METHODS else "other"
        self.metrics.requests.labels(template, method, str(status)).inc()
        self.metrics.latency.labels(template).observe(seconds)
        if log.isEnabledFor(logging.INFO):
            client = scope.get("client") or ("-", 0)
            model = (scope.get("path_params") or {}).get("model", "")
            log.info('%s "%s %s%s" %d %.1f ms', client[0], method, template,
                     f" model={model[:64]!r}" if model else "", status, seconds * 1000)
