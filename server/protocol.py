"""uvicorn's h11 protocol with a time limit on request heads (against slowloris).

uvicorn bounds an idle keep-alive connection (``timeout_keep_alive``), but any byte
received cancels that timer, and nothing bounds how long a request's head may take:
a client sending one header byte every few seconds holds its connection forever.
Like nginx's ``client_header_timeout``, a connection here gets ``header_timeout``
seconds to deliver a complete request head, counted from when it opens and, for the
next request on a kept-alive connection, from the end of the previous answer
(plus the keep-alive time it may idle first); otherwise it is closed.

The body is bounded elsewhere: by ``--request-timeout-s`` while a route reads it,
and a response sent before the body was read closes the connection (guards.py).
"""
from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["protocol_class"]


class _HeadTimeoutH11Protocol(H11Protocol):
    header_timeout: float = 10.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: "asyncio.TimerHandle | None" = None
        self._arm_head_timer(self.header_timeout)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is not None and self.conn.their_state is not h11.IDLE:
            self._head_timer.cancel()  # a whole request head has arrived
            self._head_timer = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_head_timer(self.timeout_keep_alive + self.header_timeout)

    def connection_lost(self, exc) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _arm_head_timer(self, seconds: float) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(seconds, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        waiting_for_head = self.conn.their_state is h11.IDLE and (
            self.cycle is None or self.cycle.response_complete)
        if waiting_for_head and not self.transport.is_closing():
            self.logger.debug("Closed a connection that sent no complete request head "
                              "within %g s", self.header_timeout)
            self.transport.close()


def protocol_class(header_timeout: float) -> type:
    """The protocol for ``uvicorn.run(http=...)`` with this head time limit."""
    return type("HeadTimeoutH11Protocol", (_HeadTimeoutH11Protocol,),
                {"header_timeout": header_timeout})
