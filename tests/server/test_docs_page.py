"""/docs and /redoc work on a lab network with no internet: every script, style and icon
they name is served by the server itself (FastAPI's own pages load them from a CDN)."""
import re

import pytest

from orangecontrib.deepimage.server.docs import ASSETS

LINK = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""")


def links(html: str) -> list[str]:
    return [a or b for a, b in LINK.findall(html)]


@pytest.mark.parametrize("page, assets", [
    ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
    ("/redoc", {"redoc.standalone.js", "favicon.png"})])
def test_docs_pages_name_only_local_assets_and_they_are_served(client, page, assets):
    response = client.get(page)
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    html = response.text
    named = links(html)
    assert named and not re.search(r"https?://|//cdn|jsdelivr|unpkg|googleapis", html), named
    assert all(link.startswith("/") and not link.startswith("//") for link in named), named
    assert {link.rsplit("/", 1)[1] for link in named if link.startswith(ASSETS)} == assets
    for link in named:
        served = client.get(link)
        assert served.status_code == 200, link
        # a real file, not an empty or error body (fastapi-offline 1.7's favicon is 412 bytes)
        small = link.endswith(("json", ".png"))
        assert len(served.content) > (100 if small else 1000), link
        if link.endswith(".png"):
            assert served.content.startswith(b"\x89PNG"), link
    assert client.get(f"{ASSETS}/swagger-ui-bundle.js").headers["content-type"].startswith(
        ("text/javascript", "application/javascript"))


def test_swagger_ui_reads_the_servers_openapi_version(client):
    """Swagger UI 4 shows 'Unable to render this definition' for OpenAPI 3.1."""
    version = client.get("/openapi.json").json()["openapi"]
    bundle = client.get(f"{ASSETS}/swagger-ui-bundle.js").text
    assert not version.startswith("3.1") or "isOAS31" in bundle


def test_docs_are_not_in_the_api_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(p.startswith(("/docs", "/redoc", ASSETS)) for p in paths)
