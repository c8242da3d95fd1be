"""The labelling loop's refit in a process of its own, so it never holds the GUI's GIL.

Label Images refits after every change of the labels: a logistic regression, its
predictions on every row, a cross-validated estimate, suggestions and label issues.
In a thread of the GUI process that work holds the GIL long enough to stall the
window on a busy computer (925 ms seen with 20,000 images). `RefitWorker` runs it in
one persistent process (multiprocessing, "spawn" context, so the same on Linux,
macOS and Windows):

- the embeddings go to the process once per input, in raw chunks written straight
  into its array (no pickling of the matrix); a refit then sends only the labels;
- the newest request wins: the process answers only the last refit it has been sent,
  and abandons a refit between its steps when a newer message arrives; callers of
  older requests get `Superseded`, and so do cancelled ones, answered or not;
- when the process cannot start or dies, the refit runs in the caller's thread
  (`fallback` says why), so labelling goes on;
- `close()` stops the process (the widget calls it from onDeleteWidget); a daemon
  process also ends with its parent.
"""
from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import time
from typing import Callable, Optional, Sequence

import numpy as np

from .refit import RefitResult, refit

__all__ = ["RefitWorker", "Superseded", "serve"]

#: rows per chunk of the embeddings sent to the process (8 MB of 512-d float64)
CHUNK_ROWS = 2048
#: seconds between checks for cancellation while waiting for an answer
POLL = 0.05
#: how much lower the process's priority is than the window's (POSIX nice steps)
NICENESS = 5
#: seconds the process gets to start and answer its first message
START_TIMEOUT = 300.0


#: the token the client holds before any embeddings were sent (no caller's token is it)
_NO_DATA = object()


class Superseded(Exception):
    """A newer request replaced this one (or the caller cancelled it)."""


class _Newer(Exception):
    """In the process: a newer message arrived, abandon the current refit."""


def serve(conn) -> None:
    """The worker process's loop (a top-level function, so "spawn" can pickle it):
    keep the embeddings of the current input, answer the newest refit. It runs at a
    lower priority than the window (where the system allows), so on a busy computer
    the window gets the processor first."""
    _lower_priority()
    embeddings, token = None, None
    pending: list = []
    while True:
        try:
            if not pending:
                pending.append(_read(conn))
            while conn.poll():
                pending.append(_read(conn))
        except (EOFError, OSError):
            return
        latest = max((i for i, m in enumerate(pending) if m[0] == "refit"), default=None)
        for i, message in enumerate(pending):
            kind = message[0]
            if kind == "stop":
                return
            if kind == "data":
                token, embeddings = message[1], message[2]
            elif kind == "refit" and i != latest:
                conn.send(("superseded", message[1], None))
        request = pending[latest] if latest is not None else None
        pending = []
        if request is not None:
            _answer(conn, request, token, embeddings)


def _lower_priority(step: int = NICENESS) -> None:
    if hasattr(os, "nice"):  # POSIX; on Windows the process keeps the normal class
        try:
            os.nice(step)
        except OSError:
            pass


def _read(conn) -> tuple:
    """The next message; a "data" header is followed by the matrix's raw chunks,
    read straight into the array: ("data", token, matrix)."""
    message = conn.recv()
    if message[0] != "data":
        return message
    _, token, shape, dtype = message
    matrix = np.empty(shape, dtype)
    for start in range(0, shape[0], CHUNK_ROWS):
        conn.recv_bytes_into(memoryview(matrix[start:start + CHUNK_ROWS]).cast("B"))
    return "data", token, matrix


def _answer(conn, request: tuple, token, embeddings: Optional[np.ndarray]) -> None:
    _, request_id, wanted, args = request
    if wanted != token or embeddings is None:
        conn.send(("error", request_id, RuntimeError("the worker has no embeddings")))
        return

    def check() -> None:
        if conn.poll():
            raise _Newer()
    try:
        result = refit(embeddings, *args, check=check)
    except _Newer:
        conn.send(("superseded", request_id, None))
        return
    except Exception as error:  # noqa: BLE001 -- reported to the caller, who raises it
        conn.send(("error", request_id, _picklable(error)))
        return
    conn.send(("done", request_id, result))


def _picklable(error: Exception) -> Exception:
    import pickle
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(error).__name__}: {error}")


class RefitWorker:
    """The client side: `refit(...)` from any thread (usually a widget's worker
    thread); it blocks until the answer comes, polling `cancelled`."""

    def __init__(self, use_process: bool = True):
        self.use_process = use_process
        self.fallback = "" if use_process else "asked to run in the thread"
        self._process = None
        self._conn = None
        self._token = _NO_DATA  # the input whose embeddings the process holds
        self._ids = itertools.count(1)
        self._latest = 0
        self._ready = False  # the process has answered once
        self._closed = False
        self._answers: dict = {}
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()

    @property
    def in_process(self) -> bool:
        """True while refits run in the worker process."""
        return self._process is not None and not self.fallback

    def refit(self, embeddings: np.ndarray, token: object, labels: Sequence, classes:
              Sequence[str], n_suggest: int, seed: int = 0, with_scores: bool = False,
              cancelled: Callable[[], bool] = lambda: False) -> RefitResult:
        """core.labelling.refit.refit for these labels; ``token`` names the input
        (new token: the embeddings are sent again). Raises Superseded when a newer
        request or ``cancelled`` overtook this one."""
        args = (tuple(labels), tuple(classes), n_suggest, seed, with_scores)
        if not self.fallback:
            try:
                return self._remote(embeddings, token, args, cancelled)
            except (OSError, EOFError, ValueError, RuntimeError, TimeoutError) as error:
                if self._closed:
                    raise Superseded() from None
                if not self._broken(error):
                    raise
        return refit(embeddings, *args, check=lambda: _raise_if(cancelled()))

    def _broken(self, error: Exception) -> bool:
        """After an error: if the process is gone (or never came), fall back."""
        if self._process is not None and self._process.is_alive() \
                and not isinstance(error, (OSError, EOFError, TimeoutError)):
            return False  # the refit itself failed; the process is fine
        self.fallback = f"the refit process failed ({type(error).__name__}: {error}); " \
                        "refitting in a thread"
        self._stop()
        return True

    def warm_up(self) -> None:
        """Start the process now, in the background (it takes a few seconds to import
        scikit-learn), so the first refit need not wait for it."""
        def start() -> None:
            with self._send_lock:
                if self._process is None and not self.fallback:
                    try:
                        self._start()
                    except (OSError, ValueError, RuntimeError) as error:
                        self._broken(error)
                    if self._closed:  # close() ran while it started: stop it here
                        self._stop()
        if self._process is None and not self.fallback:
            threading.Thread(target=start, daemon=True, name="refit-warm-up").start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=serve, args=(child,), daemon=True,
                                  name="deepimage-label-refit")
        process.start()
        child.close()
        self._process, self._conn, self._token = process, parent, _NO_DATA

    def _remote(self, embeddings, token, args: tuple, cancelled) -> RefitResult:
        if cancelled():  # nothing to ask the process
            raise Superseded()
        with self._send_lock:
            if self._process is None:
                if self._closed:
                    raise Superseded()
                self._start()
                if self._closed:  # close() ran while it started: it missed this one
                    self._stop()
                    raise Superseded()
            if token != self._token:
                self._send_matrix(np.ascontiguousarray(embeddings), token)
            request_id = next(self._ids)
            self._latest = request_id
            self._conn.send(("refit", request_id, token, args))
        started, process = time.monotonic(), self._process
        while True:
            answer = self._wait(request_id)
            self._ready = self._ready or answer is not None
            if cancelled():  # even if the answer came: the caller no longer wants it
                raise Superseded()
            if answer is not None:
                kind, value = answer
                if kind == "done":
                    return value
                if kind == "superseded":
                    raise Superseded()
                raise value
            if request_id != self._latest:
                raise Superseded()
            if self._process is not process:
                raise Superseded()  # closed meanwhile
            if not process.is_alive():
                raise EOFError("the refit process ended")
            if not self._ready and time.monotonic() - started > START_TIMEOUT:
                raise TimeoutError("the refit process did not answer")

    def _send_matrix(self, matrix: np.ndarray, token) -> None:
        self._conn.send(("data", token, matrix.shape, matrix.dtype.str))
        for start in range(0, len(matrix), CHUNK_ROWS):
            self._conn.send_bytes(memoryview(matrix[start:start + CHUNK_ROWS]).cast("B"))
        self._token = token

    def _wait(self, request_id: int) -> Optional[tuple]:
        """This request's answer if it has come, reading at most one message."""
        with self._recv_lock:
            conn = self._conn
            if conn is None:
                raise Superseded()  # closed meanwhile
            if request_id not in self._answers and conn.poll(POLL):
                kind, answered, value = conn.recv()
                if answered >= self._latest or kind != "done":
                    self._answers[answered] = (kind, value)
                for stale in [i for i in self._answers if i < self._latest]:
                    if stale != request_id:
                        del self._answers[stale]
            return self._answers.pop(request_id, None)

    def close(self, wait: bool = True, timeout: float = 2.0) -> None:
        """Stop the process (it abandons its refit first); later refits run in the
        caller's thread. Without ``wait`` a background thread waits for it to end
        (and ends it after ``timeout``), so a closing window does not."""
        self._closed = True
        self.fallback = self.fallback or "closed"
        if wait:
            self._stop(timeout)
        else:
            threading.Thread(target=self._stop, args=(timeout,), daemon=True,
                             name="refit-stop").start()

    def _stop(self, timeout: float = 2.0) -> None:
        # no lock: _broken calls it holding _send_lock, and close() must not wait for it
        process, conn = self._process, self._conn
        self._process = self._conn = None
        self._token = _NO_DATA
        if conn is not None:
            try:
                conn.send(("stop",))
            except (OSError, ValueError):
                pass
        if process is not None:
            process.join(timeout)
            if process.is_alive():
                process.terminate()
                process.join(timeout)
        if conn is not None:
            conn.close()


def _raise_if(flag: bool) -> None:
    if flag:
        raise Superseded()
