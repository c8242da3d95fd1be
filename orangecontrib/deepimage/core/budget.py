"""A budget of pixels that bounds how much memory concurrent decoders use together.

Each decoder reserves the pixels it is about to decode (width x height, read from
the header) and gives them back when done; a decoder that would go over the budget
waits. An image larger than the whole budget is let through when nothing else is
being decoded, so it is slow, never refused.
"""
from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
import time
from typing import Iterator

__all__ = ["PixelBudget", "BudgetTimeout", "DEFAULT_DECODE_BUDGET", "shared_budget",
           "return_free_memory"]

#: pixels decoded at once by local embedding (all threads together); a 12-megapixel
#: JPEG costs under one megapixel (it is decoded at reduced scale), a 7000 x 7000
#: 16-bit PNG 49 megapixels.
DEFAULT_DECODE_BUDGET = 100_000_000


class BudgetTimeout(RuntimeError):
    """The pixels could not be reserved in time: other images are being decoded."""


class PixelBudget:
    """A thread-safe count of pixels in use, at most ``capacity`` (see module doc)."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"a pixel budget must be at least 1 pixel, not {capacity}")
        self.capacity = int(capacity)
        self._in_use = 0
        self._cond = threading.Condition()

    @property
    def in_use(self) -> int:
        with self._cond:
            return self._in_use

    def _fits(self, pixels: int) -> bool:
        return self._in_use == 0 or self._in_use + pixels <= self.capacity

    def acquire(self, pixels: int, timeout: "float | None" = None) -> None:
        """Reserve ``pixels``, waiting while they do not fit (at most ``timeout`` seconds;
        None waits as long as it takes). BudgetTimeout when the wait ran out."""
        pixels = max(0, int(pixels))
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._fits(pixels):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise BudgetTimeout(
                        f"{pixels / 1e6:.1f} megapixels did not fit in the decode budget "
                        f"({self._in_use / 1e6:.1f} of {self.capacity / 1e6:g} in use) "
                        f"within {timeout:g} s")
                self._cond.wait(remaining)
            self._in_use += pixels

    def release(self, pixels: int) -> None:
        """Give back pixels reserved with :meth:`acquire`."""
        with self._cond:
            self._in_use = max(0, self._in_use - max(0, int(pixels)))
            self._cond.notify_all()

    @contextlib.contextmanager
    def reserve(self, pixels: int, timeout: "float | None" = None) -> Iterator[None]:
        """``with budget.reserve(w * h):`` decode, then the pixels are given back."""
        self.acquire(pixels, timeout)
        try:
            yield
        finally:
            self.release(pixels)

    def __repr__(self) -> str:
        return f"PixelBudget({self.capacity:,}, in_use={self.in_use:,})"


_shared: "PixelBudget | None" = None
_shared_lock = threading.Lock()


def shared_budget() -> PixelBudget:
    """The process-wide budget of local decoding (embedding, remote embedding's
    local decode): DEFAULT_DECODE_BUDGET pixels, shared by every decode thread."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = PixelBudget(DEFAULT_DECODE_BUDGET)
        return _shared


def _find_malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # glibc; musl has none
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_malloc_trim = _find_malloc_trim()


def return_free_memory() -> None:
    """Hand memory freed after a big decode back to the operating system.

    glibc keeps freed blocks of 16 MB and less in each thread's arena, so without this
    every decode thread would keep its largest image's worth of memory (measured: 4
    threads decoding one 49-megapixel image after another peaked at 410 MB instead of
    130 MB). A no-op where there is no glibc. Takes about a millisecond.
    """
    if _malloc_trim is not None:
        _malloc_trim(0)
