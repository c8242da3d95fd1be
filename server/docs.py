"""The server's interactive API pages, /docs (Swagger UI) and /redoc, with their scripts,
styles and icon served by the server itself: FastAPI's own pages load them from a CDN,
and are blank on a lab network with no internet.

The assets are those of the ``fastapi-offline`` package (Swagger UI 5, which reads
OpenAPI 3.1, and ReDoc), served from its installed folder under :data:`ASSETS`.
"""
from __future__ import annotations

import importlib.resources
import logging

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (get_redoc_html, get_swagger_ui_html,
                                  get_swagger_ui_oauth2_redirect_html)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS", "DOCS", "REDOC", "install_docs"]

log = logging.getLogger("orangecontrib.deepimage.server")

ASSETS = "/docs-assets"  # swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png
DOCS = "/docs"
REDOC = "/redoc"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


def assets_folder() -> "str | None":
    """The installed folder of Swagger UI's and ReDoc's files, or None without them."""
    try:
        folder = importlib.resources.files("fastapi_offline") / "static"
    except ModuleNotFoundError:
        return None
    return str(folder) if folder.joinpath("swagger-ui-bundle.js").is_file() else None


def install_docs(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets to ``app`` (made with docs_url=None and
    redoc_url=None); without the assets there are no such pages, and a warning."""
    folder = assets_folder()
    if folder is None:
        log.warning("No /docs page: the package fastapi-offline, which holds Swagger UI's "
                    "files, is not installed (pip install fastapi-offline).")
        return
    app.mount(ASSETS, StaticFiles(directory=folder), name="docs-assets")
    title = app.title

    @app.get(DOCS, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + app.openapi_url, title=f"{title} - Swagger UI",
            oauth2_redirect_url=root + OAUTH2_REDIRECT,
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png")

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + app.openapi_url, title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png", with_google_fonts=False)
