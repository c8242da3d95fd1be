"""Start a Server on This Computer with the addresses users type: "localhost" starts and
connects to 127.0.0.1 (a client asking for localhost may try ::1 first, seconds on
Windows); IPv6 loopback gets a bracketed URL; the server goes with the widget."""
import os
import shutil
import socket
import tempfile
import time
from unittest import mock

from Orange.widgets.tests.base import WidgetTest

from orangecontrib.deepimage.embedder_job import SERVER, local_server_possible
from orangecontrib.deepimage.server.launch import free_port
from orangecontrib.deepimage.widgets.owimageembedder import OWImageEmbedder

TIMEOUT = 120000


def port_is_free(host, port):
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            # as a new server binds (uvicorn sets SO_REUSEADDR): closed connections in
            # TIME_WAIT do not hold the port, a process still listening does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_free(host, port, timeout=10.0):
    """Whether the port is free within ``timeout`` s (the server process may take a
    moment to exit after it was told to stop)."""
    deadline = time.monotonic() + timeout
    while not port_is_free(host, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


class TestStartServerAddresses(WidgetTest):
    def setUp(self):
        tmp = tempfile.mkdtemp(prefix="embedder-addresses-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        patch = mock.patch.dict(os.environ, {"DEEPIMAGE_CACHE_DIR": os.path.join(tmp, "c")})
        patch.start()
        self.addCleanup(patch.stop)

    def start(self, url):
        w = self.create_widget(OWImageEmbedder, stored_settings={
            "server_url": url, "model_key": "server:squeezenet"})
        self.process_events(lambda: w._listing_future.done(), timeout=TIMEOUT)
        self.assertTrue(w.start_button.isVisibleTo(w))
        w.start_button.click()
        self.process_events(lambda: w._starting is None, timeout=TIMEOUT)
        self.assertFalse(w.Error.server.is_shown(), str(w.Error.server))
        return w

    def test_localhost_means_127_0_0_1(self):
        port = free_port()
        w = self.start(f"http://localhost:{port}")
        self.assertEqual(w._local_server.url, f"http://127.0.0.1:{port}")
        choice = w.current_choice()
        self.assertEqual((choice.where, choice.server_url), (SERVER, f"http://127.0.0.1:{port}"))
        self.assertIn(f"http://127.0.0.1:{port}", str(w.Information.local_server))
        w.onDeleteWidget()
        self.assertTrue(wait_for_free("127.0.0.1", port))

    def test_ipv6_loopback_is_bracketed(self):
        port = free_port("::1")
        self.assertTrue(local_server_possible(f"http://[::1]:{port}"))
        w = self.start(f"http://[::1]:{port}")
        self.assertEqual(w._local_server.url, f"http://[::1]:{port}")
        self.assertEqual(w.current_choice().server_url, f"http://[::1]:{port}")
        w.onDeleteWidget()
        self.assertTrue(wait_for_free("::1", port))

    def test_other_loopback_addresses_can_start_one(self):
        self.assertTrue(local_server_possible("http://127.0.0.2:8000"))
        self.assertFalse(local_server_possible("https://127.0.0.1:8000"))
        self.assertFalse(local_server_possible("http://gpu.lab.org:8000"))
