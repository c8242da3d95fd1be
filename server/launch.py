"""Run `deepimage serve` in a background process on this computer, for scripts and tests.

    with start_server("--models", "squeezenet") as server:   # a free port, 127.0.0.1
        RemoteEmbedder(server.url).embed(paths)

One place for starting the server, waiting until /readyz says its networks are
loaded, and stopping it (politely, then for sure): the lesson 3 script, the test
suite and the load benchmark all use it. Imports neither Qt nor Orange; httpx only
while waiting.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Mapping, Optional

__all__ = ["ServerProcess", "ServerNotReady", "free_port", "start_server"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing on this computer listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServerNotReady(RuntimeError):
    """`deepimage serve` stopped, or did not become ready in time; says what it printed."""


class ServerProcess:
    """`deepimage serve OPTIONS --host HOST --port PORT` started in the background.

    ``port`` None takes a free one. What the server prints goes to ``log_file`` (a
    temporary file, removed by :meth:`stop`, when None); :meth:`output` reads it.
    ``env`` is added to this process' environment. Call :meth:`wait_ready` (or use
    :func:`start_server`) before sending anything; :meth:`stop` always, or use
    ``with``.
    """

    def __init__(self, *options: str, host: str = "127.0.0.1", port: Optional[int] = None,
                 env: Optional[Mapping[str, str]] = None,
                 log_file: "str | os.PathLike | None" = None):
        self.host = host
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        if log_file is None:
            fd, log_file = tempfile.mkstemp(prefix="deepimage-serve-", suffix=".log")
            os.close(fd)
            self._own_log = True
        else:
            self._own_log = False
        self.log_file = os.fspath(log_file)
        command = [sys.executable, "-m", "orangecontrib.deepimage.cli", "serve",
                   *options, "--host", host, "--port", str(self.port)]
        # append mode: reading the log (another handle) never moves the server's writes
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, **(env or {})})

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
        while self.running and time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
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
        """Stop the server: politely first (SIGTERM), after ``timeout`` s for sure."""
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
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
