"""Every error the server sends is JSON ``{"detail": "<reason>"}`` with the right status.

Handlers for our :class:`ApiError`, FastAPI's validation errors, Starlette's HTTP
errors and anything unexpected (500, logged with its traceback, never crashing a
worker). Each error is counted by kind in the metrics.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["ApiError", "install_error_handlers", "error_response"]

log = logging.getLogger("orangecontrib.deepimage.server")


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


def _count(request: Request, kind: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.error(kind)


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

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _count(request, "internal")
        log.exception("Unexpected error while handling %s %s", request.method,
                      request.url.path if "/t/" not in request.url.path else "(token path)")
        return error_response(500, f"Internal server error ({type(exc).__name__}); "
                                   f"the server log has the details.")
