"""Hostile and unlucky clients against a real `deepimage serve` (uvicorn on 127.0.0.1).

Raw sockets play the clients an HTTP library would never be: a head that never ends,
a body that stops halfway, an endless chunked body, made-up methods, foreign Host
names. One server for the module, with small limits so that each case is quick. It
runs without a usable temporary folder (what the documented systemd sandbox used to
leave): a sitecustomize points Python's tempfile at a folder that does not exist,
since a real read-only sandbox cannot be made here.
"""
from __future__ import annotations

import io
import re
import select
import socket
import time
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from orangecontrib.deepimage.server.launch import ServerNotReady

from live_server import LiveServer
from server_helpers import TOKEN, jpeg

MAX_BODY = 4 * 2**20
MAX_BUFFERED = 6 * 2**20
MAX_CONNECTIONS = 8
HEAD_TIMEOUT = 1.0
KEEP_ALIVE = 1.0
PROXY_NAME = "proxy.lab.example"
REQUEST_TIMEOUT = 8.0

NO_TEMP = "import tempfile\ntempfile.tempdir = '/nonexistent/deepimage-no-temp-folder'\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hardening")
    shim = folder / "no-temp"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(NO_TEMP)
    live = LiveServer(folder, "--models", "squeezenet", "--max-request-bytes", str(MAX_BODY),
                      "--max-buffered-bytes", str(MAX_BUFFERED),
                      "--header-timeout-s", str(HEAD_TIMEOUT), "--keep-alive-s", str(KEEP_ALIVE),
                      "--max-connections", str(MAX_CONNECTIONS),
                      "--max-images-per-request", "4", "--allowed-hosts", PROXY_NAME,
                      "--request-timeout-s", str(REQUEST_TIMEOUT),
                      env={"PYTHONPATH": str(shim)}).wait_ready()
    try:
        yield live
    finally:
        live.stop()


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=5)


def head(url: str, method: str = "GET", path: str = "/healthz", **headers) -> bytes:
    parts = urlsplit(url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def read_response(sock: socket.socket, timeout: float = 10) -> "tuple[int, dict, bytes]":
    """Status, headers (lower-case names) and body of one response on ``sock``."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    raw_head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (we only read)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if sock.recv(65536) == b"":
                return True
        except socket.timeout:
            return False
        except ConnectionError:
            return True
    return False


def trickle_until_closed(sock: socket.socket, pieces, every: float, within: float) -> float:
    """Send ``pieces`` one at a time every ``every`` seconds; the seconds until the server
    closed the connection, or ``inf`` when it was still open after ``within``."""
    start = time.monotonic()
    for piece in pieces:
        if time.monotonic() - start > within:
            break
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionError):
            return time.monotonic() - start
        if closed_by_server(sock, every):
            return time.monotonic() - start
    return float("inf")


def metric(text: str, name: str, **labels) -> float:
    """One sample of the Prometheus text ``text`` (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if match and match[1] == name:
            got = ",".join(sorted((match[2] or "").split(","))) if match[2] else ""
            if got == wanted:
                return float(match[3])
    return 0.0


def metrics(server) -> str:
    return httpx.get(f"{server.url}/metrics").text


# 4: slowloris ---------------------------------------------------------------------------

def test_a_head_that_never_ends_is_cut_off(server):
    with connect(server.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        seconds = trickle_until_closed(sock, (b"X-Slow: 1\r\n" for _ in range(100)),
                                       every=0.25, within=6)
    assert seconds < HEAD_TIMEOUT + 2, "a trickling request head held its connection"
    with connect(server.url) as sock:  # one that connects and says nothing
        assert closed_by_server(sock, HEAD_TIMEOUT + 2)


def test_an_idle_kept_alive_connection_is_closed_even_when_it_trickles(server):
    with connect(server.url) as sock:
        sock.sendall(head(server.url))
        assert read_response(sock)[0] == 200
        # the next request's head, one byte at a time: keeps no connection forever
        seconds = trickle_until_closed(sock, (bytes([b]) for b in head(server.url)),
                                       every=0.25, within=8)
    assert seconds < KEEP_ALIVE + HEAD_TIMEOUT + 2


def test_connections_beyond_the_cap_get_503(server):
    idle = [connect(server.url) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        with connect(server.url) as sock:
            sock.sendall(head(server.url))
            status, headers, _ = read_response(sock)
        assert status == 503 and headers.get("connection") == "close"
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{server.url}/healthz").status_code == 200


# 5: the rest of a refused body is not read --------------------------------------------

def test_after_an_early_413_an_endless_chunked_body_is_not_read(server):
    chunk = b"%x\r\n" % 65536 + b"\xff" * 65536 + b"\r\n"
    with connect(server.url) as sock:
        sock.sendall(head(server.url, "POST", "/image/squeezenet",
                          Transfer_Encoding="chunked"))
        status = headers = None
        start = time.monotonic()
        closed_after = float("inf")
        for _ in range(2000):  # up to 128 MiB; the limit is 4 MiB
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionError):
                closed_after = time.monotonic() - start
                break
            if status is None and select.select([sock], [], [], 0)[0]:
                try:
                    status, headers, _ = read_response(sock)
                except ConnectionError:  # closed with unread data: the answer may be lost
                    closed_after = time.monotonic() - start
                    break
            if time.monotonic() - start > 8:
                break
        if closed_after == float("inf") and closed_by_server(sock, 3):
            closed_after = time.monotonic() - start
    assert closed_after < 8, "the server went on reading a body it had refused"
    if status is not None:
        assert status == 413 and headers["connection"] == "close"
    # a Content-Length over the limit: 413 and closed, nothing read
    with connect(server.url) as sock:
        sock.sendall(head(server.url, "POST", "/image/squeezenet", Content_Length=10**10))
        status, headers, body = read_response(sock)
        assert status == 413 and headers["connection"] == "close" and b"limit" in body
        assert closed_by_server(sock, 2)


def test_a_well_behaved_client_keeps_its_connection(server):
    """The limits above never close a connection whose requests are read to their end."""
    image = jpeg(5)
    with connect(server.url) as sock:
        for _ in range(3):
            sock.sendall(head(server.url, "POST", "/image/squeezenet",
                              Content_Type="image/jpeg", Content_Length=len(image)) + image)
            status, headers, body = read_response(sock)
            assert status == 200 and "connection" not in headers and b"embedding" in body
        sock.sendall(head(server.url, "POST", "/healthz", Content_Length=0))
        status, headers, _ = read_response(sock)
        assert status == 405 and "connection" not in headers  # an empty body is read
        sock.sendall(head(server.url))
        assert read_response(sock)[0] == 200


def test_a_body_that_stalls_gets_504_and_its_connection_closed(server):
    with connect(server.url) as sock:
        sock.sendall(head(server.url, "POST", "/image/squeezenet", Content_Length=50_000)
                     + b"\xff" * 1000)  # and nothing more, connection left open
        start = time.monotonic()
        status, headers, body = read_response(sock, timeout=REQUEST_TIMEOUT + 10)
        assert status == 504 and headers["connection"] == "close" and b"limit" in body
        assert time.monotonic() - start < REQUEST_TIMEOUT + 5
        assert closed_by_server(sock, 2)


# 6: memory for bodies in total ---------------------------------------------------------

def test_bodies_are_bounded_in_total_503_with_retry_after(server):
    held = connect(server.url)
    try:  # a request that has declared 4 MiB and sent 1 KB: the server holds room for it
        held.sendall(head(server.url, "POST", "/image/squeezenet",
                          Content_Length=MAX_BODY - 10) + b"\xff" * 1000)
        time.sleep(0.3)
        response = httpx.post(f"{server.url}/image/squeezenet", content=b"\xff" * (3 * 2**20))
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert "busy" in response.json()["detail"]
    finally:
        held.close()
    deadline = time.monotonic() + 5  # the room is given back when the client leaves
    while time.monotonic() < deadline:
        response = httpx.post(f"{server.url}/image/squeezenet", content=b"\xff" * (3 * 2**20))
        if response.status_code != 503:
            break
        time.sleep(0.1)
    assert response.status_code == 422  # read, and found not to be an image


# 7: a client that leaves mid-upload ----------------------------------------------------

def test_a_client_leaving_mid_upload_is_counted_quietly(server):
    before = metrics(server)
    log_start = len(server.output())
    boundary = "deepimageboundary"
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"images\"; "
            f"filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + jpeg(1)
    for method_path, content_type in (("/v1/embed/squeezenet",
                                       f"multipart/form-data; boundary={boundary}"),
                                      ("/image/squeezenet", "image/jpeg")):
        with connect(server.url) as sock:
            sock.sendall(head(server.url, "POST", method_path, Content_Type=content_type,
                              Content_Length=200_000) + part)
            time.sleep(0.3)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        after = metrics(server)
        if (metric(after, "deepimage_errors_total", kind="client_disconnect")
                - metric(before, "deepimage_errors_total", kind="client_disconnect")) >= 2:
            break
        time.sleep(0.1)
    assert (metric(after, "deepimage_errors_total", kind="client_disconnect")
            - metric(before, "deepimage_errors_total", kind="client_disconnect")) == 2
    assert (metric(after, "deepimage_errors_total", kind="internal")
            == metric(before, "deepimage_errors_total", kind="internal"))
    log = server.output()[log_start:]
    assert "Traceback" not in log and " ERROR " not in log, log
    assert log.count("closed the connection before its request was read") == 2


# 8: metric labels from a fixed set -----------------------------------------------------

def test_made_up_methods_and_paths_make_no_new_metric_series(server):
    for method, path in (("FOOBAR", "/x-12345"), ("BREW", "/image/squeezenet"),
                         ("GET", "/no/such/path-6789"), ("get", "/healthz")):
        with connect(server.url) as sock:
            sock.sendall(head(server.url, method, path))
            assert read_response(sock)[0] in (404, 405)
    text = metrics(server)
    for made_up in ("FOOBAR", "BREW", "x-12345", "path-6789", 'method="get"'):
        assert made_up not in text, made_up
    assert metric(text, "deepimage_requests_total", route="(no route)", method="other",
                  status="404") >= 1
    assert 'method="other"' in text


# 9: multipart statuses as documented ---------------------------------------------------

def test_multipart_limits_answer_the_documented_statuses(server):
    url = f"{server.url}/v1/embed/squeezenet"
    six = [("images", (f"{i}.jpg", jpeg(i, (16, 16)), "image/jpeg")) for i in range(6)]
    response = httpx.post(url, files=six)  # the server allows 4
    assert response.status_code == 413 and "at most 4" in response.json()["detail"]
    for content_type, body in (("multipart/form-data; boundary=xyz", b"garbage"),
                               ("multipart/form-data", b"no boundary"),
                               ("multipart/form-data; boundary=xyz",
                                b"--xyz\r\nContent-Disposition: form-data\r\n\r\nno name"
                                b"\r\n--xyz--\r\n")):
        response = httpx.post(url, content=body, headers={"Content-Type": content_type})
        assert response.status_code == 422, (body, response.text)
        assert "multipart" in response.json()["detail"]


# 12: no temporary folder needed --------------------------------------------------------

def test_image_parts_over_1_mib_need_no_temporary_folder(server):
    noise = np.random.default_rng(0).integers(0, 255, (700, 700, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "PNG")
    big = buf.getvalue()
    assert 2**20 < len(big) < MAX_BODY
    response = httpx.post(f"{server.url}/v1/embed/squeezenet",
                          files=[("images", ("big.png", big, "image/png")),
                                 ("images", ("small.jpg", jpeg(2), "image/jpeg"))])
    assert response.status_code == 200, response.text
    assert [list(r) for r in response.json()["results"]] == [["embedding"], ["embedding"]]


# 11: Host names ------------------------------------------------------------------------

def test_a_loopback_server_without_tokens_answers_only_local_host_names(server):
    port = urlsplit(server.url).port
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "",
                 "192.168.1.5"):
        response = httpx.get(f"{server.url}/healthz", headers={"Host": host})
        assert response.status_code == 421, host
        assert "--allowed-hosts" in response.json()["detail"]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "127.3.4.5", f"[::1]:{port}",
                 PROXY_NAME, f"{PROXY_NAME.upper()}:443"):
        assert httpx.get(f"{server.url}/healthz", headers={"Host": host}).status_code == 200
    # a web page of another site (right Host after DNS rebinding, or a cross-site POST)
    response = httpx.post(f"{server.url}/image/squeezenet", content=jpeg(1),
                          headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    response = httpx.post(f"{server.url}/image/squeezenet", content=jpeg(1),
                          headers={"Origin": f"http://localhost:{port}"})
    assert response.status_code == 200
    # and no CORS: a browser gets no permission to read answers from elsewhere
    response = httpx.options(f"{server.url}/image/squeezenet",
                             headers={"Origin": f"http://localhost:{port}",
                                      "Access-Control-Request-Method": "POST"})
    assert not any(name.lower().startswith("access-control-") for name in response.headers)


# 10 and 13: settings that can never work are refused at start-up -----------------------

def test_a_queue_smaller_than_a_request_is_refused_at_start(tmp_path):
    server = LiveServer(tmp_path, "--models", "squeezenet", "--max-queued-images", "2",
                        "--max-images-per-request", "4")
    try:
        with pytest.raises(ServerNotReady, match="--max-queued-images 2 is below "
                                                 "--max-images-per-request 4"):
            server.wait_ready(60)
    finally:
        server.stop()


def test_tokens_must_be_printable_ascii(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\nschlüssel-0123456789abcdef\n", encoding="utf-8")
    server = LiveServer(tmp_path, "--models", "squeezenet", "--token-file", str(tokens))
    try:
        with pytest.raises(ServerNotReady, match="printable ASCII"):
            server.wait_ready(60)
    finally:
        server.stop()


# 13: the client ------------------------------------------------------------------------

def test_the_client_sends_tokens_in_clear_text_only_where_told(server, tmp_path):
    from orangecontrib.deepimage.client import AccessRefused, RemoteEmbedder, base_url as _base
    port = urlsplit(server.url).port
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg(3))
    # no scheme: plain http for this computer (as the server listens), https elsewhere
    with RemoteEmbedder(f"127.0.0.1:{port}", cache=False) as local:
        assert local.url == f"http://127.0.0.1:{port}"
        assert local.embed([str(photo)]).embeddings.shape == (1, 512)
    for typed, url in (("embed.lab.example", "https://embed.lab.example"),
                       ("embed.lab.example:8000/t/x/", "https://embed.lab.example:8000/t/x"),
                       ("10.0.0.7:8000", "https://10.0.0.7:8000"),
                       ("localhost:8000", "http://localhost:8000"),
                       ("[::1]:8000", "http://[::1]:8000"),
                       ("http://embed.lab.example", "http://embed.lab.example")):
        assert _base(typed) == url, typed
    # a token a header cannot carry is refused before anything is sent
    for token in ("schlüssel-0123456789abcdef", "two words-0123456789abcdef"):
        with pytest.raises(AccessRefused, match="printable ASCII"):
            RemoteEmbedder(f"127.0.0.1:{port}", token=token, cache=False)
