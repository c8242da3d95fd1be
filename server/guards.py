"""ASGI middleware in front of every route: body size, admission, request log and metrics.

- Body size: a Content-Length over the limit is refused (413) before anything is
  read; a body that grows past the limit while streaming (chunked) is cut off with
  413 too, so no request can make the server buffer more than the limit.
- Admission: at most ``max_pending_requests`` embedding requests are handled at
  once; beyond that the answer is 503 with Retry-After, at once, never a queue
  that grows without bound.
- Request log and metrics use the route template, never the raw path, so the
  token of ``/t/<token>/image/...`` is never written anywhere.
"""
from __future__ import annotations

import logging
import time

from .errors import ApiError, error_response

__all__ = ["GuardMiddleware"]

log = logging.getLogger("orangecontrib.deepimage.server.access")

EMBED_PREFIXES = ("/image/", "/v1/embed/", "/t/")


class GuardMiddleware:
    """Limits, admission control, the request log and request metrics."""

    def __init__(self, app, settings, metrics, state):
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500, "started": False}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
            await send(message)

        try:
            await self._handle(scope, receive, send_wrapper)
        finally:
            self._record(scope, status["code"], time.perf_counter() - start)

    async def _handle(self, scope, receive, send):
        limit = self.settings.max_request_bytes
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0:
                self.metrics.error("bad_request")
                return await error_response(400, "Content-Length is not a number.")(
                    scope, receive, send)
            if declared > limit:
                self.metrics.error("body_too_large")
                return await error_response(413, self._too_large(declared))(scope, receive, send)
        embedding = scope["path"].startswith(EMBED_PREFIXES) and scope["method"] == "POST"
        if embedding:
            if self.state.pending >= self.settings.max_pending_requests:
                self.metrics.error("overloaded")
                return await error_response(
                    503, f"The server is busy ({self.state.pending} requests in progress); "
                         f"retry in a moment.", {"Retry-After": "1"})(scope, receive, send)
            self.state.pending += 1
            self.metrics.pending_requests.set(self.state.pending)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise ApiError(413, self._too_large(received), "body_too_large")
            return message

        try:
            await self.app(scope, limited_receive, send)
        except ApiError as exc:  # raised while no route handler could catch it
            self.metrics.error(exc.kind)
            await error_response(exc.status, exc.detail, exc.headers)(scope, receive, send)
        finally:
            if embedding:
                self.state.pending -= 1
                self.metrics.pending_requests.set(self.state.pending)

    def _too_large(self, size: int) -> str:
        return (f"The request body is over the server's limit of "
                f"{self.settings.max_request_bytes:,} bytes ({size:,} bytes or more); send "
                f"smaller images or fewer per request.")

    def _record(self, scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "(no route)"
        self.metrics.requests.labels(template, scope["method"], str(status)).inc()
        self.metrics.latency.labels(template).observe(seconds)
        if log.isEnabledFor(logging.INFO):
            client = scope.get("client") or ("-", 0)
            model = (scope.get("path_params") or {}).get("model", "")
            log.info('%s "%s %s%s" %d %.1f ms', client[0], scope["method"], template,
                     f" model={model[:64]!r}" if model else "", status, seconds * 1000)
