"""`deepimage serve` in a real subprocess on a free 127.0.0.1 port, for the server, client,
widget and tutorial tests: the package's own launcher (orangecontrib.deepimage.server.launch),
with the server's output kept in the test's folder."""
from __future__ import annotations

import os

from orangecontrib.deepimage.server.launch import ServerProcess, free_port

__all__ = ["LiveServer", "free_port"]


class LiveServer(ServerProcess):
    """``LiveServer(log_dir, *options, env=...).wait_ready()``; ``url``, ``stop()``,
    ``output()`` (what the server printed, also after ``stop()``)."""

    def __init__(self, log_dir: "str | os.PathLike", *options: str,
                 env: "dict | None" = None):
        port = free_port()
        super().__init__(*options, port=port, env=env,
                         log_file=os.path.join(log_dir, f"serve-{port}.log"))

    def wait_ready(self, timeout: float = 180) -> "LiveServer":
        """Return once /readyz answers 200; raise with the server's output otherwise."""
        return super().wait_ready(timeout)
