"""uvicorn's httptools protocol with the limits it lacks.

`make run` and `make serve` start uvicorn with
`--http config.httpguard:GuardedHttpToolsProtocol`. Measured on uvicorn 0.54
with httptools, the stock protocol holds a 100 MB header in memory (the h11
option `h11_max_incomplete_event_size` does not apply to httptools), and keeps
a connection open forever while a client dribbles a request line or a body a
byte at a time. This subclass adds, per connection:

- a cap on request line + headers (`AISPENDTRACK_MAX_HEADER_KB`, 64): a longer
  head gets 431 and the connection is closed before more is buffered;
- a head-read deadline (`AISPENDTRACK_HEADER_TIMEOUT`, 10 s) from the first byte
  of a request (or from the connection's opening) to its last header: 408, closed;
- a body-read deadline (`AISPENDTRACK_BODY_TIMEOUT`, 60 s) from the last header
  to the last body byte: 408 if no answer has started, then closed (the
  application sees `http.disconnect`);
- a cap on open connections per worker (`AISPENDTRACK_MAX_CONNECTIONS`, 1000):
  the next one gets 503 and is closed at once.

It also tells the application when a client hangs up without a task per
request: each request's scope carries `extensions["aispendtrack.hangup"]["callbacks"]`,
a list the application may append callables to; they are called (once, on the
event loop) when the connection is lost before that request's answer is
complete. The proxy uses it to cancel the call (proxy/endpoint.py); under a
server without it, the proxy watches `receive()` with a task instead.

And it writes an answer whose whole body follows its head at once in one
write(2) instead of two: an `http.response.start` message carrying
`HOLD_HEAD: True` has its head held until the next `http.response.body`,
and both go out together. Only the sender knows that nothing can come
between the two (a proxy JSON answer, an error the proxy raises); a held
head that no body follows would never be sent, so nothing else is held,
and another server ignores the key.

Everything else (parsing, keep-alive, pipelining, flow control) is uvicorn's.
The proxy's own body cap (`AISPENDTRACK_MAX_BODY_MB`) lives in proxy/endpoint.py,
where it can answer in the provider's error shape.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

HANGUP = "aispendtrack.hangup"
HOLD_HEAD = "aispendtrack.hold_head"

REASONS = {
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)  # loads the application, so settings are ready
        self.max_head = settings.AISPENDTRACK_MAX_HEADER_KB * 1024
        self.head_timeout = settings.AISPENDTRACK_HEADER_TIMEOUT
        self.body_timeout = settings.AISPENDTRACK_BODY_TIMEOUT
        self.max_connections = settings.AISPENDTRACK_MAX_CONNECTIONS
        self.reading_head = True
        self.head_bytes = 0
        self.deadline: asyncio.TimerHandle | None = None

    # Connection events
    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self.refuse(503, "Too many open connections; try again shortly.")
            return
        self.arm(self.head_timeout, "the request's headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        cycle = self.cycle
        super().connection_lost(exc)
        if cycle is not None and not cycle.response_complete:
            extensions: dict[str, Any] = cycle.scope.get("extensions") or {}
            callbacks = extensions[HANGUP]["callbacks"]
            while callbacks:
                callbacks.pop()()

    def data_received(self, data: bytes) -> None:
        while data and not self.transport.is_closing():
            if self.reading_head:
                room = self.max_head - self.head_bytes
                if room <= 0:
                    limit = self.max_head // 1024
                    self.refuse(431, f"Request line and headers exceed {limit} KB.")
                    return
                chunk, data = data[:room], data[room:]
                self.head_bytes += len(chunk)
            else:
                chunk, data = data, b""
            super().data_received(chunk)

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {HANGUP: {"callbacks": []}}
        if self.deadline is None:
            self.arm(self.head_timeout, "the request's headers")

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self.arm(self.body_timeout, "the request's body")
        cycle = self.cycle
        super().on_headers_complete()
        if self.cycle is not cycle and type(self.cycle) is RequestResponseCycle:
            # uvicorn names its cycle class inside on_headers_complete; the
            # task it scheduled looks `send` up on the instance when it runs.
            self.cycle.__class__ = HeldHeadCycle

    def on_message_complete(self) -> None:
        self.disarm()
        self.reading_head = True
        self.head_bytes = 0
        super().on_message_complete()

    # Deadlines
    def arm(self, seconds: float, what: str) -> None:
        self.disarm()
        self.deadline = self.loop.call_later(seconds, self.expire, what, seconds)

    def disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def expire(self, what: str, seconds: float) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        self.logger.info("closing a connection that sent %s too slowly (> %ss)", what, seconds)
        self.refuse(408, f"The server timed out waiting for {what}.")

    def refuse(self, status: int, message: str) -> None:
        """Answer `status` (unless an answer is already under way) and close."""
        self.disarm()
        if self.cycle is None or self.cycle.response_complete or not self.cycle.response_started:
            body = message.encode("ascii")
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                % (status, REASONS[status], len(body), body)
            )
            if self.cycle is not None and not self.cycle.response_complete:
                # The application may still answer: it must not write after us.
                self.cycle.response_started = True
                self.cycle.disconnected = True
        self.transport.close()


class _Collected:
    """Stands in for the transport while uvicorn writes a held head (or the
    body that follows it): keeps the bytes, and whether it asked to close."""

    __slots__ = ("closed", "parts")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.closed = True


class HeldHeadCycle(RequestResponseCycle):
    """uvicorn's cycle, writing a `HOLD_HEAD` head together with the body after it.

    uvicorn's own `send` still builds and checks every byte (status line,
    headers, content-length bookkeeping, keep-alive); it only writes into a
    `_Collected` instead of the socket. Its `send` does not await unless
    writing is paused, so the stand-in is never seen by anything else.
    """

    held: bytes | None = None

    async def send(self, message) -> None:
        held = self.held
        if held is None:
            if (
                message.get(HOLD_HEAD)
                and not self.response_started
                and not self.flow.write_paused
                and not self.disconnected
            ):
                collected = _Collected()
                await self._send_into(message, collected)
                self.held = b"".join(collected.parts)
            else:
                await super().send(message)
            return
        self.held = None
        if self.flow.write_paused or self.disconnected:  # as uvicorn would have had it
            if not self.disconnected:
                self.transport.write(held)
            await super().send(message)
            return
        collected = _Collected()
        try:
            await self._send_into(message, collected)
        finally:
            self.transport.write(held + b"".join(collected.parts))
            if collected.closed:
                self.transport.close()

    async def _send_into(self, message, collected: _Collected) -> None:
        """uvicorn's send with its writes (and a close) kept in `collected`."""
        transport, self.transport = self.transport, collected  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
