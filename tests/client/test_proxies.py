"""Behind a lab proxy (http_proxy & co. set, as Orange copies the system's, without
no_proxy) loopback requests go direct and every other host still goes to the proxy."""
import socket
import threading

import httpx
import pytest

from orangecontrib.deepimage.client import RemoteEmbedder, list_models
from orangecontrib.deepimage.core.loopback import http_client, is_loopback, no_proxy_mounts
from orangecontrib.deepimage.server.launch import free_port, start_server

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                   "ALL_PROXY")


@pytest.fixture
def dead_proxy(monkeypatch):
    """Every proxy variable points at a port nothing listens on; no no_proxy."""
    proxy = f"http://127.0.0.1:{free_port()}"
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    return proxy


class RecordingProxy:
    """A socket server standing in for a lab proxy: keeps the request lines it gets
    and answers 200."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.lines = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                self.lines.append(head.split(b"\r\n")[0].decode())
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                             b"Connection: close\r\n\r\nok")


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.9.1", True), ("localhost", True), ("LOCALHOST.", True),
    ("::1", True), ("[::1]", True), ("10.0.0.1", False), ("gpu.lab.org", False),
    ("localhost.lab.org", False), ("", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_every_loopback_form_is_mounted_direct():
    mounts = no_proxy_mounts("http://127.3.4.5:9000", "http://gpu.lab.org:8000")
    assert set(mounts) == {"all://127.0.0.1", "all://localhost", "all://[::1]",
                           "all://*.localhost", "all://127.3.4.5"}
    assert set(mounts.values()) == {None}


def test_real_server_is_reached_past_a_dead_proxy(real_server, dead_proxy, cache, sources):
    # the condition is real: a plain httpx client sends 127.0.0.1 to the dead proxy
    with pytest.raises(httpx.ConnectError):  # to the proxy: the server is up
        httpx.get(f"{real_server.url}/readyz", timeout=5)
    with http_client(real_server.url, timeout=5) as client:
        assert client.get(f"{real_server.url}/readyz").status_code == 200
    (model,) = list_models(real_server.url, token=real_server.token)
    assert model["name"] == "squeezenet"
    remote = RemoteEmbedder(real_server.url, token=real_server.token, cache=cache,
                            batch_size=2, in_flight=2, retries=0)
    assert len(remote.embed(sources).indices) == 6
    localhost = real_server.url.replace("127.0.0.1", "localhost")
    assert list_models(localhost, token=real_server.token)[0]["name"] == "squeezenet"


def test_start_server_waits_past_a_dead_proxy(dead_proxy, tmp_path):
    """Lesson 3 and Start a Server: waiting for /readyz must not go to the proxy."""
    with start_server("--models", "squeezenet", "--backend", "torch", "--log-level",
                      "warning", log_file=tmp_path / "serve.log", timeout=120) as server:
        assert server.running


def test_other_hosts_keep_the_users_proxy(monkeypatch):
    proxy = RecordingProxy()
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, proxy.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with http_client("http://gpu.lab.example:8000", timeout=5) as client:
        response = client.get("http://gpu.lab.example:8000/v1/models")
    assert response.text == "ok"
    assert proxy.lines == ["GET http://gpu.lab.example:8000/v1/models HTTP/1.1"]
    proxy.sock.close()


@pytest.fixture
def web_image(tmp_path):
    """A real http.server on 127.0.0.1 serving one PNG: its URL and bytes."""
    import functools
    import http.server
    (tmp_path / "red.png").write_bytes(b"\x89PNG fake but served")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/red.png", b"\x89PNG fake but served"
    server.shutdown()
    server.server_close()


def test_images_by_url_on_this_computer_skip_a_dead_proxy(web_image, dead_proxy, tmp_path):
    import urllib.error
    import urllib.request

    from orangecontrib.deepimage.core.urls import UrlCache, fetch
    url, data = web_image
    with pytest.raises(urllib.error.URLError):  # the condition: urllib asks the proxy
        urllib.request.build_opener().open(url, timeout=5)
    assert fetch(url, 1 << 20, cache=UrlCache(tmp_path / "urls")) == data


def test_images_by_url_elsewhere_keep_the_users_proxy(monkeypatch):
    from orangecontrib.deepimage.core.loopback import urlopen
    proxy = RecordingProxy()
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with urlopen("http://images.lab.example/a.png", timeout=5) as response:
        assert response.read() == b"ok"
    assert proxy.lines == ["GET http://images.lab.example/a.png HTTP/1.1"]
    proxy.sock.close()
