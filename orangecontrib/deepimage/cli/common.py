"""What every `deepimage` command shares: its error and warning lines, the image
progress bar, and reading a model file.

Exit codes across the commands: 0 done, 1 nothing usable came out, 2 wrong
arguments (or input that cannot be used), 130 interrupted.
"""
from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["fail", "warn", "ProgressBar", "load_model"]


def fail(message: str, code: int = 2) -> int:
    """Print ``deepimage: error: message`` on stderr and return ``code`` (the exit code)."""
    print(f"deepimage: error: {message}", file=sys.stderr)
    return code


def warn(message: str) -> None:
    """Print ``deepimage: warning: message`` on stderr."""
    print(f"deepimage: warning: {message}", file=sys.stderr)


class ProgressBar:
    """A ``progress(done, total)`` callback drawing a tqdm bar on ``stream`` (stderr):
    images done, their rate and the time left; silent when the stream is not a terminal."""

    def __init__(self, stream: TextIO = sys.stderr, enabled: "bool | None" = None,
                 unit: str = "image"):
        self.stream, self.unit = stream, unit
        self.enabled = stream.isatty() if enabled is None else enabled
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=total, file=self.stream, unit=self.unit, dynamic_ncols=True)
        elif total != self.bar.total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def load_model(path: str):
    """A model from a .pkcls file (Orange's Save Model pickle). Raises ValueError with a
    reason a person can act on."""
    import pickle
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    except Exception as exc:
        raise ValueError(f"{path} is not a model file ({type(exc).__name__}: {exc})") from None
