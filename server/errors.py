"""Every error the server sends is JSON ``{"detail": "<reason>"}`` with the right status.

``ERROR_KINDS`` is the one table of what can go wrong: each kind's status and what it
means. The metrics count errors by these kinds, and the routes' OpenAPI ``responses``
(``responses_for``) are made from it. Handlers for our :class:`ApiError`, FastAPI's
validation errors, Starlette's HTTP errors, a client that went away mid-request
(counted, one quiet log line) and anything unexpected (500, logged with its
traceback, never crashing a worker).
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

__all__ = ["ApiError", "ERROR_KINDS", "install_error_handlers", "error_response",
           "responses_for"]

log = logging.getLogger("orangecontrib.deepimage.server")

# kind -> (status, when); the metric deepimage_errors_total{kind} has exactly these
ERROR_KINDS: dict[str, tuple[int, str]] = {
    "bad_request": (422, "malformed request (e.g. not multipart, no images part)"),
    "bad_image": (422, "not an image, or an empty body"),
    "too_many_pixels": (413, "image over --max-pixels (read from its header)"),
    "unsupported_format": (415, "image in a format the server does not decode (EPS, PDF, "
                                "HEIC, ...; read from its first bytes)"),
    "body_too_large": (413, "body over --max-request-bytes"),
    "too_many_images": (413, "more than --max-images-per-request images"),
    "unauthorized": (401, "missing or wrong access token"),
    "bad_host": (421, "Host not this computer (or 403: a cross-site Origin)"),
    "unknown_model": (404, "model not served"),
    "not_ready": (503, "model still loading (see Retry-After)"),
    "overloaded": (503, "busy: too many requests, images, bytes or pixels being decoded at "
                        "once (see Retry-After)"),
    "timeout": (504, "took longer than --request-timeout-s"),
    "client_disconnect": (499, "the client went away before the answer (nothing is sent)"),
    "internal": (500, "a bug: the server log has the traceback"),
}

# what nginx logs for a client that closed the connection first; never reaches a client
CLIENT_CLOSED = 499


class ApiError(Exception):
    """An error for the client: HTTP status, a reason for people, a kind for metrics."""

    def __init__(self, status: int, detail: str, kind: str,
                 headers: "dict[str, str] | None" = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.headers = headers or {}


def error_response(status: int, detail: str, headers: "dict[str, str] | None" = None
                   ) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def responses_for(*kinds: str) -> dict:
    """OpenAPI ``responses`` for routes that can fail with ``kinds`` (one entry per status)."""
    schema = {"application/json": {"schema": {
        "type": "object", "properties": {"detail": {"type": "string"}}}}}
    texts: dict[int, list[str]] = {}
    for kind in kinds:
        status, text = ERROR_KINDS[kind]
        texts.setdefault(status, []).append(text)
    return {status: {"description": "; ".join(parts), "content": schema}
            for status, parts in sorted(texts.items())}


def _count(request: Request, kind: str) -> None:
    server = getattr(request.app.state, "server", None)
    if server is not None:
        server.metrics.error(kind)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error JSON with a reason."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        _count(request, exc.kind)
        return error_response(exc.status, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        _count(request, "bad_request")
        parts = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
            parts.append(f"{where}: {error.get('msg', 'invalid')}" if where
                         else str(error.get("msg", "invalid")))
        return error_response(422, "Invalid request: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code >= 400:
            _count(request, "bad_request" if exc.status_code < 500 else "internal")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return error_response(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # not a server error: nobody is there to read an answer, and no traceback helps
        _count(request, "client_disconnect")
        client = request.client.host if request.client else "-"
        log.info("%s closed the connection before its request was read to the end", client)
        return Response(status_code=CLIENT_CLOSED)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _count(request, "internal")
        log.exception("Unexpected error while handling %s %s", request.method,
                      request.url.path if "/t/" not in request.url.path else "(token path)")
        return error_response(500, f"Internal server error ({type(exc).__name__}); "
                                   f"the server log has the details.")
