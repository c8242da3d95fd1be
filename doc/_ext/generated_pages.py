"""Sphinx extension: pages whose reference part is generated from the code at build time.

A page opts in with a marker line, an HTML comment that GitHub does not show:

    <!-- generated: cli-reference -->     every `deepimage` sub-command's --help
    <!-- generated: openapi-reference --> the embedding server's OpenAPI schema
    <!-- generated: networks-reference --> the model registry and torchvision's networks

On ``source-read`` the marker is replaced by Markdown that MyST then parses like the
rest of the page, so the generated headings join the page's table of contents. The
pages are re-read on every build (``env-get-outdated``): the code, not the page, may
have changed. Nothing here loads a network or starts a server.
"""
from __future__ import annotations

import re

from sphinx.application import Sphinx

from cli_reference import render_cli_reference
from networks_reference import render_networks_reference
from openapi_reference import render_openapi_reference

RENDERERS = {
    "cli-reference": render_cli_reference,
    "openapi-reference": render_openapi_reference,
    "networks-reference": render_networks_reference,
}
MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)


def expand_markers(text: str) -> str:
    """``text`` with every marker replaced by its generated Markdown."""
    def replace(match: re.Match) -> str:
        try:
            render = RENDERERS[match.group(1)]
        except KeyError:
            raise ValueError(f"unknown generated section {match.group(1)!r}; "
                             f"known: {', '.join(RENDERERS)}") from None
        return render()
    return MARKER.sub(replace, text)


def _source_read(app: Sphinx, docname: str, source: list) -> None:
    if MARKER.search(source[0]):
        source[0] = expand_markers(source[0])
        _generated_docs(app).add(docname)


def _generated_docs(app: Sphinx) -> set:
    if not hasattr(app.env, "deepimage_generated_docs"):
        app.env.deepimage_generated_docs = set()
    return app.env.deepimage_generated_docs


def _always_outdated(app: Sphinx, env, added, changed, removed) -> list:
    return sorted(_generated_docs(app) - set(removed))


def _merge(app: Sphinx, env, docnames, other) -> None:
    _generated_docs(app).update(getattr(other, "deepimage_generated_docs", ()))


def setup(app: Sphinx) -> dict:
    app.connect("source-read", _source_read)
    app.connect("env-get-outdated", _always_outdated)
    app.connect("env-merge-info", _merge)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
