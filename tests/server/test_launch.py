"""server.launch: `deepimage serve` started as Orange starts its helpers, stopped cleanly,
never left behind holding its port, and reachable at IPv6 loopback (real processes)."""
import os
import socket
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from orangecontrib.deepimage.server import launch
from orangecontrib.deepimage.server.launch import (CREATE_NO_WINDOW, WATCH_PARENT,
                                                   ServerProcess, free_port, popen_options,
                                                   python_executable)

SERVE = ("--models", "squeezenet", "--backend", "torch", "--log-level", "warning")


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        try:
            # as a new server binds (uvicorn sets SO_REUSEADDR): closed connections in
            # TIME_WAIT do not hold the port, a process still listening does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for(condition, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_windows_helpers_get_no_console_window_and_utf8_io():
    options = popen_options({"EXTRA": "1"}, platform="win32")
    assert options["creationflags"] == CREATE_NO_WINDOW == 0x08000000
    env = options["env"]
    assert env["PYTHONIOENCODING"] == "utf-8" and env["PYTHONUTF8"] == "1"
    assert env[WATCH_PARENT] == "1" and env["EXTRA"] == "1"
    assert "creationflags" not in popen_options(platform="linux")  # a Windows-only flag


def test_pythonw_starts_its_helpers_with_python_exe(monkeypatch):
    monkeypatch.setattr(sys, "executable", r"C:\Program Files\Orange\pythonw.exe")
    monkeypatch.setattr(os, "path", __import__("ntpath"))
    assert python_executable("win32") == r"C:\Program Files\Orange\python.exe"
    monkeypatch.setattr(sys, "executable", r"C:\Program Files\Orange\python.exe")
    assert python_executable("win32") == r"C:\Program Files\Orange\python.exe"


def test_ipv6_loopback_server_has_a_valid_url():
    with ServerProcess(*SERVE, host="::1") as server:
        assert server.url == f"http://[::1]:{server.port}"
        server.wait_ready(180)
        assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert port_is_free("::1", server.port)


def test_stop_is_polite_first():
    """stop() closes the server's stdin: it shuts down as on Ctrl-C (SIGINT), without
    needing SIGTERM or a kill, and the port is free at once."""
    server = ServerProcess(*SERVE).wait_ready(180)
    signals = []
    server.process.terminate = lambda: signals.append("SIGTERM")
    server.process.kill = lambda: signals.append("SIGKILL")
    started = time.monotonic()
    server.stop()
    assert signals == [] and server.process.returncode == 0, server.output()
    assert time.monotonic() - started < 10
    assert port_is_free("127.0.0.1", server.port)
    server.stop()  # twice is harmless


def test_server_does_not_outlive_a_killed_parent(tmp_path):
    """Orange killed (or crashed) while its server runs: no orphan keeps the port."""
    script = textwrap.dedent(f"""
        import sys, time
        from orangecontrib.deepimage.server.launch import ServerProcess
        server = ServerProcess(*{SERVE!r}, log_file={str(tmp_path / 'serve.log')!r})
        server.wait_ready(180)
        print(server.process.pid, server.port, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True)
    try:
        child_pid, port = map(int, parent.stdout.readline().split())
    finally:
        parent.kill()  # SIGKILL: no atexit, no cleanup of any kind in the parent
        parent.wait()
    assert wait_for(lambda: port_is_free("127.0.0.1", port), 30), \
        (tmp_path / "serve.log").read_text()

    def gone():
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            return True
        # a zombie until init reaps it: gone as far as the port and the CPU go
        with open(f"/proc/{child_pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")
    assert wait_for(gone, 10)


def test_a_server_from_a_terminal_does_not_watch_stdin(monkeypatch):
    monkeypatch.delenv(WATCH_PARENT, raising=False)
    assert launch.exit_with_parent() is None


def test_free_port_for_ipv6():
    port = free_port("::1")
    assert port_is_free("::1", port)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_start_local_server_url(host):
    from orangecontrib.deepimage.core.loopback import http_url
    url = http_url(host, 8123)
    assert httpx.URL(url).host == host and httpx.URL(url).port == 8123
