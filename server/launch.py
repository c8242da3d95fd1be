"""Run `deepimage serve` in a background process on this computer, for scripts and tests.

    with start_server("--models", "squeezenet") as server:   # a free port, 127.0.0.1
        RemoteEmbedder(server.url).embed(paths)

One place for starting the server, waiting until /readyz says its networks are
loaded, and stopping it (politely, then for sure): the lesson 3 script, Image
Embedder's "Start a Server on This Computer", the test suite and the load benchmark
all use it. The server is started as Orange starts its own helpers: python.exe (not
pythonw.exe) with no console window on Windows and UTF-8 I/O. It never outlives the
process that started it: it reads its stdin (a pipe from here) and stops when that
closes, which the operating system does however this process ends, and :meth:`stop`
is registered with atexit. Imports neither Qt nor Orange; httpx only while waiting.
"""
from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Mapping, Optional

from orangecontrib.deepimage.core.loopback import http_client, http_url

__all__ = ["ServerProcess", "ServerNotReady", "free_port", "start_server", "python_executable",
           "popen_options", "exit_with_parent", "WATCH_PARENT"]

# set in the server's environment: stop when stdin closes (the parent has gone)
WATCH_PARENT = "DEEPIMAGE_SERVE_EXIT_WITH_PARENT"
CREATE_NO_WINDOW = 0x08000000  # subprocess.CREATE_NO_WINDOW, which exists on Windows only


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing on this computer listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def python_executable(platform: "str | None" = None) -> str:
    """This Python, as a console program: Orange on Windows runs as pythonw.exe, whose
    children have no stdout (Orange's own helpers swap in python.exe the same way)."""
    platform = platform or sys.platform
    executable = sys.executable
    folder, name = os.path.split(executable)
    if platform == "win32" and name.lower() == "pythonw.exe":
        return os.path.join(folder, "python.exe")
    return executable


def popen_options(env: Optional[Mapping[str, str]] = None,
                  platform: "str | None" = None) -> dict:
    """subprocess.Popen options for a helper process, as Orange starts its own: UTF-8
    I/O (whatever the Windows code page), no console window on Windows, and the
    environment variable that makes the server stop with its parent."""
    platform = platform or sys.platform
    options = {"env": {**os.environ, "PYTHONIOENCODING": "utf-8", "PYTHONUTF8": "1",
                       WATCH_PARENT: "1", **(env or {})}}
    if platform == "win32":
        options["creationflags"] = CREATE_NO_WINDOW
    return options


def exit_with_parent(stdin=None, grace_s: float = 10) -> Optional[threading.Thread]:
    """In the server (when :data:`WATCH_PARENT` is set): a thread that reads stdin and,
    when it closes (the parent stopped the server, ended or was killed), asks the
    server to stop as Ctrl-C does, and ends the process after ``grace_s`` s if that
    did not. None when the variable is not set (a server started in a terminal)."""
    if os.environ.get(WATCH_PARENT) != "1":
        return None
    stream = stdin if stdin is not None else sys.stdin
    if stream is None:
        return None

    def watch():
        try:
            while stream.buffer.read1(4096) if hasattr(stream, "buffer") else stream.read(1):
                pass
        except (OSError, ValueError):
            pass  # a broken pipe means the same: the parent is gone
        timer = threading.Timer(grace_s, os._exit, (3,))
        timer.daemon = True
        timer.start()
        signal.raise_signal(signal.SIGINT)  # uvicorn stops gracefully, as on Ctrl-C

    thread = threading.Thread(target=watch, name="deepimage-exit-with-parent", daemon=True)
    thread.start()
    return thread


class ServerNotReady(RuntimeError):
    """`deepimage serve` stopped, or did not become ready in time; says what it printed."""


class ServerProcess:
    """`deepimage serve OPTIONS --host HOST --port PORT` started in the background.

    ``port`` None takes a free one. What the server prints goes to ``log_file`` (a
    temporary file, removed by :meth:`stop`, when None); :meth:`output` reads it.
    ``env`` is added to this process' environment. Call :meth:`wait_ready` (or use
    :func:`start_server`) before sending anything; :meth:`stop` always, or use
    ``with`` (it is also called at exit). ``host`` may be an IPv6 address ('::1'):
    :attr:`url` brackets it.
    """

    def __init__(self, *options: str, host: str = "127.0.0.1", port: Optional[int] = None,
                 env: Optional[Mapping[str, str]] = None,
                 log_file: "str | os.PathLike | None" = None):
        self.host = host
        self.port = port or free_port(host)
        self.url = http_url(host, self.port)
        if log_file is None:
            fd, log_file = tempfile.mkstemp(prefix="deepimage-serve-", suffix=".log")
            os.close(fd)
            self._own_log = True
        else:
            self._own_log = False
        self.log_file = os.fspath(log_file)
        command = [python_executable(), "-X", "utf8", "-m", "orangecontrib.deepimage.cli",
                   "serve", *options, "--host", host, "--port", str(self.port)]
        # append mode: reading the log (another handle) never moves the server's writes;
        # stdin is a pipe that only this process holds: the server stops when it closes
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log,
                                            stderr=subprocess.STDOUT, **popen_options(env))
        atexit.register(self.stop)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        """What the server has printed so far."""
        try:
            with open(self.log_file, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:  # removed by stop()
            return ""

    def wait_ready(self, timeout: float = 300) -> "ServerProcess":
        """Return once /readyz answers 200 (the networks are loaded); otherwise stop
        the server and raise :class:`ServerNotReady` with what it printed."""
        import httpx
        deadline = time.monotonic() + timeout
        with http_client(self.url, timeout=2) as client:  # never through a proxy
            while self.running and time.monotonic() < deadline:
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass  # not listening yet
                time.sleep(0.1)
        code = self.process.poll()
        why = (f"it stopped with exit code {code}" if code is not None
               else f"not ready after {timeout:.0f} s")
        output = self.output()
        self.stop()
        raise ServerNotReady(f"deepimage serve did not start ({why}):\n{output}")

    def stop(self, timeout: float = 20) -> None:
        """Stop the server: politely first (its stdin closes, as if this process ended:
        it stops as on Ctrl-C), then SIGTERM, after ``timeout`` s for sure (kill)."""
        atexit.unregister(self.stop)
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        for step in (None, self.process.terminate, self.process.kill):
            if step is not None and self.running:
                step()
            try:
                self.process.wait(timeout=timeout / 2 if step is None else timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        if self._own_log:
            try:
                os.remove(self.log_file)
            except OSError:
                pass

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_server(*options: str, host: str = "127.0.0.1", port: Optional[int] = None,
                 env: Optional[Mapping[str, str]] = None,
                 log_file: "str | os.PathLike | None" = None,
                 timeout: float = 300) -> ServerProcess:
    """Start `deepimage serve` with ``options`` and return it once it is ready; it is
    stopped again when it never gets ready or the wait is interrupted (Ctrl-C)."""
    server = ServerProcess(*options, host=host, port=port, env=env, log_file=log_file)
    try:
        return server.wait_ready(timeout)
    except BaseException:
        server.stop()
        raise
