"""One upstream connection of the lean client: an asyncio.Protocol feeding
httptools' response parser, and the response proxy/relay.py reads
(`.status`, `.headers.get`, `.raw_headers`, `.content.iter_any()`,
`.release()`). The read timeout is one timer per request, pushed back by
each byte; a connection is reusable only once its whole answer was read
with keep-alive on both sides (proxy/lean_http/__init__.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import httptools
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

if TYPE_CHECKING:
    from proxy.lean_http.client import LeanClient

HIGH_WATER = 256 * 1024  # unread answer bytes past which the socket is not read
_BODILESS = frozenset({204, 304})

PoolKey = tuple[str, str, int]


class _Headers:
    """`.get(name)` case-insensitive, built on first use from the raw pairs."""

    __slots__ = ("_map", "_raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._map: dict[str, str] | None = None

    def get(self, name: str, default: Any = None) -> Any:
        found = self._map
        if found is None:
            found = self._map = {}
            for key, value in self._raw:  # the first of a repeated name wins, as in aiohttp
                found.setdefault(
                    key.decode("latin-1").lower(), value.decode("utf-8", "surrogateescape")
                )
        return found.get(name.lower(), default)


class _Body:
    """The answer's bytes as they arrive: `iter_any()` as aiohttp's StreamReader."""

    __slots__ = ("_chunks", "_conn", "_error", "_size", "_waiter", "done")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._chunks: list[bytes] = []
        self._size = 0
        self._error: BaseException | None = None
        self._waiter: asyncio.Future | None = None
        self.done = False

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > HIGH_WATER:
            self._conn.pause()
        self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        if error is None:
            self.done = True
        else:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def iter_any(self) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:
                chunks, self._chunks, self._size = self._chunks, [], 0
                self._conn.resume()
                yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
            elif self._error is not None:
                raise self._error
            elif self.done:
                return
            else:
                self._waiter = self._conn.loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None


class LeanResponse:
    """What proxy/relay.py reads of an aiohttp response, and `release()`."""

    __slots__ = ("_client", "_conn", "_headers", "content", "raw_headers", "status")

    def __init__(self, client: LeanClient, conn: Connection, status: int, raw) -> None:
        self._client = client
        self._conn: Connection | None = conn
        self.status = status
        self.raw_headers: tuple[tuple[bytes, bytes], ...] = tuple(raw)
        self._headers: _Headers | None = None
        self.content = _Body(conn)

    @property
    def headers(self) -> _Headers:
        if self._headers is None:
            self._headers = _Headers(self.raw_headers)  # type: ignore[arg-type]
        return self._headers

    def release(self) -> None:
        """Back to the pool if the whole answer was read and the connection
        stays alive; closed otherwise (a cancelled or cut answer)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client.release(conn, reusable=self.content.done and conn.keep_alive)


class Connection(asyncio.Protocol):
    """One upstream connection: one request at a time, no pipelining."""

    def __init__(self, client: LeanClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.key: PoolKey = ("", "", 0)
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.keep_alive = False
        self.idle_since = 0.0
        self.reused = False  # taken from the pool
        self.answered = False  # a byte of the current answer arrived
        self._parser = httptools.HttpResponseParser(self)
        self._head: asyncio.Future | None = None
        self._response: LeanResponse | None = None
        self._raw: list[tuple[bytes, bytes]] = []
        self._interim = False
        self._framed = False  # Content-Length or chunked: EOF before the end is a cut
        self._paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_data = 0.0

    # --- the request ---------------------------------------------------------------

    def start(self, request: bytes) -> asyncio.Future:
        """Write the request; the future gives the LeanResponse once its head is in."""
        assert self.transport is not None
        self._head = head = self.loop.create_future()
        self._raw, self._framed, self._interim = [], False, False
        self.keep_alive = self.answered = False
        self.transport.write(request)
        if self.client.read_timeout:
            self._last_data = self.loop.time()
            self._timer = self.loop.call_at(self._last_data + self.client.read_timeout, self._due)
        return head

    def close(self) -> None:
        self.open = False
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self._last_data = self.loop.time()  # the wait was ours, not the server's
            self.transport.resume_reading()

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.open = True

    def data_received(self, data: bytes) -> None:
        if self._head is None:  # bytes nobody asked for: the server is off protocol
            return self.close()
        self._last_data = self.loop.time()
        self.answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            message = str(error) or type(error).__name__
            return self._fail(aiohttp.ClientResponseError(_NO_INFO, (), message=message))
        return None

    def eof_received(self) -> None:
        self.open = False  # the transport closes: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self._head is None:
            return
        if self._response is None:  # no head yet
            if exc is None or not isinstance(exc, OSError):
                return self._fail(aiohttp.ServerDisconnectedError())
            return self._fail(aiohttp.ClientOSError(*exc.args))
        if not self._framed and exc is None:  # the answer ran until the connection closed
            return self._complete()
        return self._fail(aiohttp.ClientPayloadError("Response payload is not completed"))

    # --- httptools callbacks ---------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer: the real one follows
            self._interim, self._raw = True, []
            return
        for name, value in self._raw:
            lower = name.lower()
            if lower == b"content-length" or (
                lower == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                self._framed = True
        if status in _BODILESS:
            self._framed = True
        self._response = response = LeanResponse(self.client, self, status, self._raw)
        head = self._head
        if head is not None and not head.done():
            head.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self._response is not None:
            self._response.content.feed(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self.keep_alive = self._parser.should_keep_alive()
        self._complete()

    # --- the end of an answer --------------------------------------------------------

    def _complete(self) -> None:
        self._stop_timer()
        response, self._response, self._head = self._response, None, None
        if response is not None:
            response.content.finish()

    def _fail(self, error: BaseException) -> None:
        self.close()
        self.keep_alive = False
        head, response, self._head, self._response = self._head, self._response, None, None
        if head is not None and not head.done():
            head.set_exception(error)
            head.exception()  # retrieved: a cancelled waiter must not log it
        elif response is not None:
            response.content.finish(error)

    def _due(self) -> None:
        self._timer = None
        timeout = self.client.read_timeout
        if self._head is None and self._response is None:
            return
        due = self._last_data + timeout
        now = self.loop.time()
        if self._paused:  # we stopped reading: the wait is ours, not the server's
            self._timer = self.loop.call_at(now + timeout, self._due)
            return
        if now < due:
            self._timer = self.loop.call_at(due, self._due)
            return
        self._fail(aiohttp.SocketTimeoutError("Timeout on reading data from socket"))

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


_NO_INFO = aiohttp.RequestInfo(URL(), "", CIMultiDictProxy(CIMultiDict()), URL())
