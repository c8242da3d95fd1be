"""The label editor's live update (ilastik's): run a preview job off the GUI thread.

Requests come often (a stroke, a click in the image list, a changed option); they
are gathered by a short timer, a new one cancels the one running, and only the
last one's results are delivered, with the key of the image they are for: the
partial results the job sends (the view first), then its final result. The jobs
check for cancellation between their steps, so a newer request soon runs.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from AnyQt.QtCore import QObject, QTimer, Signal
from Orange.widgets.utils.concurrent import ConcurrentMixin

from orangecontrib.deepimage.core.cancel import Cancelled

__all__ = ["LivePreview"]


class LivePreview(QObject, ConcurrentMixin):
    """``request(key, job, *args, **kwargs)`` runs ``job(*args, state, **kwargs)`` in a
    worker and emits ``ready(key, result)`` or ``failed(key, message)``."""

    ready = Signal(str, object)
    failed = Signal(str, str)
    busy = Signal(bool)

    def __init__(self, parent: Optional[QObject] = None, delay_ms: int = 150):
        QObject.__init__(self, parent)
        ConcurrentMixin.__init__(self)
        self._pending: Optional[tuple] = None
        self._running_key = ""
        self._timer = QTimer(self, singleShot=True, interval=delay_ms, timeout=self._run)

    def request(self, key: str, job: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._pending = (key, job, args, kwargs)
        self._timer.start()

    def _run(self) -> None:
        if self._pending is None:
            return
        key, job, args, kwargs = self._pending
        self._pending = None
        self._running_key = key
        self.busy.emit(True)
        self.start(job, *args, **kwargs)

    def run_now(self) -> None:
        """Start the pending request without waiting for the timer (tests, first image)."""
        self._timer.stop()
        self._run()

    def on_partial_result(self, result: Any) -> None:
        """A first, quicker result (the part of the image in view); the job goes on."""
        self.ready.emit(self._running_key, result)

    def on_done(self, result: Any) -> None:
        self.busy.emit(False)
        self.ready.emit(self._running_key, result)

    def on_exception(self, ex: Exception) -> None:
        self.busy.emit(False)
        if not isinstance(ex, Cancelled):
            self.failed.emit(self._running_key, str(ex) or type(ex).__name__)

    def stop(self) -> None:
        self._timer.stop()
        self._pending = None
        self.shutdown()
