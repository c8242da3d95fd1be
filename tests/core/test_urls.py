"""Images named by URL (core/urls.py): joining origins, data: URLs, and the disk cache
of http(s) images, against a real http.server on 127.0.0.1."""
import base64
import functools
import http.server
import io
import os
import threading

import numpy as np
import pytest
from PIL import Image

from orangecontrib.deepimage.core import urls
from orangecontrib.deepimage.core.images import ImageError, is_url, load_image, read_bytes
from orangecontrib.deepimage.core.urls import UrlCache, fetch, resolve


def png_bytes(colour=(255, 0, 0), size=(6, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_root(tmp_path_factory):
    """(base URL, folder, request log) of a real HTTP server on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("www")
    (folder / "photos").mkdir()
    (folder / "photos" / "red.png").write_bytes(png_bytes())
    (folder / "top.png").write_bytes(png_bytes((0, 0, 255)))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_CountingHandler, directory=str(folder)))
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", folder, server.requests
    server.shutdown()
    server.server_close()


@pytest.fixture
def url_cache(tmp_path, monkeypatch):
    cache = UrlCache(tmp_path / "urls")
    monkeypatch.setattr(urls, "_cache", cache)
    return cache


def test_urls_and_paths_are_told_apart():
    assert is_url("https://example.org/a.jpg") and is_url("HTTP://example.org/a.jpg")
    assert is_url("data:image/png;base64,AAAA")
    for path in ("photos/a.jpg", "/abs/a.jpg", "C:\\a.jpg", "http.jpg", "data/a.jpg",
                 "https-photos/a.jpg", "", None):
        assert not is_url(path), path


def test_origins_join_as_urls_with_urljoin_and_as_folders_with_os_path():
    """As orange3-imageanalytics joins them: urljoin for a URL origin (os.path.join
    would drop the host's path or use backslashes on Windows)."""
    assert resolve("https://host/photos", "cats/a.jpg") == "https://host/photos/cats/a.jpg"
    assert resolve("https://host/photos/", "cats/a.jpg") == "https://host/photos/cats/a.jpg"
    assert resolve("https://host/photos", "/other/a.jpg") == "https://host/other/a.jpg"
    assert resolve("https://host/photos", "../b.jpg") == "https://host/b.jpg"
    assert resolve("https://host/photos", "https://cdn/x.jpg") == "https://cdn/x.jpg"
    assert resolve("/data/photos", "cats/a.jpg") == os.path.join("/data/photos", "cats/a.jpg")
    assert resolve("/data/photos", "data:image/png;base64,AA") == "data:image/png;base64,AA"
    assert resolve("", "a.jpg") == "a.jpg" and resolve("/x", "") == ""


def test_data_urls_are_decoded_without_the_network(url_cache):
    data = png_bytes((0, 255, 0))
    url = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    assert read_bytes(url) == data
    pixels = load_image(url, (6, 4))
    assert tuple(np.asarray(pixels)[0, 0]) == (0, 255, 0)
    assert not os.path.exists(url_cache.folder)  # nothing to cache
    with pytest.raises(ImageError, match="could not be read"):
        read_bytes("data:image/png;base64")


def test_http_images_are_fetched_once_then_read_from_the_disk_cache(http_root, url_cache):
    base, folder, requests = http_root
    url = resolve(base + "/photos", "red.png")
    first = read_bytes(url)
    assert first == (folder / "photos" / "red.png").read_bytes()
    assert requests.count("/photos/red.png") == 1
    assert url_cache.path(url).read_bytes() == first
    assert read_bytes(url) == first and load_image(url, (6, 4)).shape == (4, 6, 3)
    assert requests.count("/photos/red.png") == 1  # no second download
    # a new process (a new cache object on the same folder) reads it from disk too
    assert fetch(url, 1 << 20, cache=UrlCache(url_cache.folder)) == first
    assert requests.count("/photos/red.png") == 1


def test_failed_fetches_are_reasons_and_are_not_cached(http_root, url_cache):
    base, _, requests = http_root
    url = base + "/photos/missing.png"
    for _ in range(2):
        with pytest.raises(ImageError, match="404"):
            read_bytes(url)
    assert requests.count("/photos/missing.png") == 2
    assert not url_cache.path(url).exists()


def test_the_cache_is_trimmed_oldest_first(tmp_path):
    cache = UrlCache(tmp_path, max_bytes=250)
    for i in range(5):
        cache.put(f"http://h/{i}", bytes(100))
        os.utime(cache.path(f"http://h/{i}"), (i, i))
    cache.trim()
    kept = [i for i in range(5) if cache.get(f"http://h/{i}") is not None]
    assert kept == [3, 4]
    assert not list(tmp_path.glob("*.part"))
