"""`deepimage serve` in a real subprocess on a free 127.0.0.1 port, for the server, client
and widget tests (one copy of the start, wait-until-ready and stop logic)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """``LiveServer(log_dir, *options, env=...).wait_ready()``; ``url``, ``stop()``,
    ``output()`` (what the server printed)."""

    def __init__(self, log_dir: "str | os.PathLike", *options: str,
                 env: "dict | None" = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(log_dir, f"serve-{self.port}.log"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orangecontrib.deepimage.cli", "serve", "--host",
             "127.0.0.1", "--port", str(self.port), *options],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_ready(self, timeout: float = 180) -> "LiveServer":
        """Return once /readyz answers 200; raise with the server's output otherwise."""
        import httpx
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        output = self.output()
        code = self.proc.poll()
        self.stop()
        raise RuntimeError(f"deepimage serve did not become ready"
                           f"{'' if code is None else f' (exit code {code})'}:\n{output}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
