"""A lean HTTP/1.1 client for the upstream's plain (non-streamed) calls.

aiohttp's request building and response parsing were ~17 % of a worker's
event-loop samples (docs/architecture.md, "The lean upstream client"). This
client does only what the proxy asks of aiohttp, with httptools' parser
under an asyncio.Protocol. Streams stay on aiohttp (proxy/upstream.py).

What it keeps from the aiohttp session beside it (proxy/runtime.py):
- addresses: the same resolver (PublicResolver, or aiohttp's default when
  private upstreams are allowed), asked once per (host, port) per DNS_TTL;
  IP literals are not resolved (LiteralGuard checked them); it connects only
  to what the resolver returned, through aiohappyeyeballs, address after
  address, as aiohttp does;
- TLS: a default context (certificates and host name verified, ALPN
  http/1.1), SNI the host without its trailing dot;
- timeouts: connect (TCP and TLS handshake, per attempt), read (no byte for
  `read_timeout` seconds while an answer is due); and aiohttp's own error
  classes, so proxy/upstream.py and proxy/relay.py map them unchanged;
- the request's bytes: the raw path and query, Host, the client's headers
  in order, Content-Length when there is a body or the method is not
  GET-like, UTF-8, CR/LF refused (a raw-socket test compares both clients);
- pooling per (scheme, host, port), unbounded. A connection goes back to
  the pool only once its whole answer was read and both sides keep it
  alive; one the server closed while idle (its FIN seen by the loop) or
  idle longer than KEEPALIVE (aiohttp's 15 s) is never reused. A request
  that fails on a connection before any answer (the server closed it as we
  wrote) is retried once on a fresh one for idempotent methods only:
  aiohttp's rule; a POST is not replayed and gets aiohttp's 502.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import aiohappyeyeballs
import aiohttp
import httptools
from aiohttp.abc import AbstractResolver
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

KEEPALIVE = 15.0
DNS_TTL = 300.0
HAPPY_EYEBALLS_DELAY = 0.25  # aiohttp's default
HIGH_WATER = 256 * 1024  # unread answer bytes past which the socket is not read
_GET_LIKE = frozenset({"GET", "HEAD", "OPTIONS", "CONNECT", "TRACE"})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_BODILESS = frozenset({204, 304})

PoolKey = tuple[str, str, int]


def default_ssl_context() -> ssl.SSLContext:
    """aiohttp's verified default (loads the CA store: once, at import)."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(("http/1.1",))
    return context


_DEFAULT_SSL = default_ssl_context()


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

    def __init__(self, conn: _Connection) -> None:
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

    def __init__(self, client: LeanClient, conn: _Connection, status: int, raw) -> None:
        self._client = client
        self._conn: _Connection | None = conn
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


class _Connection(asyncio.Protocol):
    """One upstream connection: one request at a time, no pipelining."""

    def __init__(self, client: LeanClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.key: PoolKey = ("", "", 0)
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.keep_alive = False
        self.idle_since = 0.0
        self.answered = False  # a byte of this request's answer arrived
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
        self._raw, self._framed, self.answered, self.keep_alive = [], False, False, False
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
        if not self._framed:  # the answer runs until the connection closes
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
        if self._paused or now < due:
            self._timer = self.loop.call_at(max(due, now + 0.001), self._due)
            return
        self._fail(aiohttp.SocketTimeoutError("Timeout on reading data from socket"))

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class LeanClient:
    """Pooled upstream connections; `request()` gives a LeanResponse or raises
    what aiohttp would (ClientConnectorError, ConnectionTimeoutError, ...)."""

    def __init__(
        self,
        *,
        resolver: AbstractResolver,
        connect_timeout: float,
        read_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.resolver = resolver
        self.connect_timeout = connect_timeout or None
        self.read_timeout = read_timeout
        self.ssl_context = ssl_context or _DEFAULT_SSL
        self._idle: dict[PoolKey, deque[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._addresses: dict[tuple[str, int], tuple[float, list]] = {}
        self._resolving: dict[tuple[str, int], asyncio.Future] = {}

    async def request(self, method: str, url: URL, headers, body: bytes) -> LeanResponse:
        host, port, scheme = url.raw_host, url.port, url.scheme
        if not host or port is None or scheme not in ("http", "https"):
            raise aiohttp.InvalidURL(url)
        key = (scheme, host, port)
        request = _request_bytes(method, url, headers, body)
        retry = method in _IDEMPOTENT
        while True:
            conn = self._pooled(key) or await self._connect(key)
            self._busy.add(conn)
            try:
                return await conn.start(request)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                self.release(conn, reusable=False)
                if not retry:
                    raise
                retry = False
            except BaseException:  # cancelled, timed out, malformed: never reused
                self.release(conn, reusable=False)
                raise

    def release(self, conn: _Connection, *, reusable: bool) -> None:
        self._busy.discard(conn)
        if not (reusable and conn.open):
            conn.close()
            return
        now = conn.loop.time()
        conn.idle_since = now
        idle = self._idle.setdefault(conn.key, deque())
        while idle and now - idle[0].idle_since > KEEPALIVE:
            idle.popleft().close()
        idle.append(conn)

    async def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        for conn in list(self._busy):
            conn.close()
        self._busy.clear()

    def _pooled(self, key: PoolKey) -> _Connection | None:
        """The most recently used live connection (LIFO keeps fewer warm)."""
        idle = self._idle.get(key)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if conn.open and now - conn.idle_since <= KEEPALIVE:
                return conn
            conn.close()
        return None

    async def _connect(self, key: PoolKey) -> _Connection:
        scheme, host, port = key
        if host.endswith(".."):
            host = host.rstrip(".") + "."
        context = self.ssl_context if scheme == "https" else None
        conn_key = ConnectionKey(host, port, context is not None, True, None, None, None, None)
        addr_infos = await self._resolve(host, port, conn_key)
        loop = asyncio.get_running_loop()
        server_hostname = host.rstrip(".") if context is not None else None
        last: Exception | None = None
        while addr_infos:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    sock = await aiohappyeyeballs.start_connection(
                        addr_infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, loop=loop
                    )
                    try:
                        _, conn = await loop.create_connection(
                            lambda: _Connection(self, loop),
                            sock=sock,
                            ssl=context,
                            server_hostname=server_hostname,
                        )
                    except BaseException:
                        sock.close()
                        raise
                conn.key = key
                return conn
            except ssl.CertificateError as error:
                last = aiohttp.ClientConnectorCertificateError(conn_key, error)
            except ssl.SSLError as error:
                last = aiohttp.ClientConnectorSSLError(conn_key, error)
            except TimeoutError:
                last = aiohttp.ConnectionTimeoutError(f"Connection timeout to host {host}:{port}")
            except OSError as error:
                last = aiohttp.ClientConnectorError(conn_key, error)
            aiohappyeyeballs.pop_addr_infos_interleave(addr_infos, None)
        assert last is not None
        raise last

    async def _resolve(self, host: str, port: int, conn_key) -> list:
        """addrinfos to connect to: the resolver's answer, cached DNS_TTL."""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:  # a literal: LiteralGuard has checked it (proxy/upstream.py)
            return _addr_infos([{"host": host, "port": port}])
        loop = asyncio.get_running_loop()
        cached = self._addresses.get((host, port))
        if cached is not None and cached[0] > loop.time():
            return list(cached[1])
        pending = self._resolving.get((host, port))
        if pending is None:  # one lookup per host however many calls wait for it
            pending = loop.create_task(self.resolver.resolve(host, port, socket.AF_UNSPEC))
            self._resolving[(host, port)] = pending
            pending.add_done_callback(lambda _: self._resolving.pop((host, port), None))
        try:
            hosts = await asyncio.shield(pending)
        except OSError as error:  # PublicResolver's refusal, or no such name
            raise aiohttp.ClientConnectorDNSError(conn_key, error) from error
        infos = _addr_infos(hosts)
        self._addresses[(host, port)] = (loop.time() + DNS_TTL, infos)
        return list(infos)


def _addr_infos(hosts) -> list:
    """aiohttp's conversion of resolver answers to what aiohappyeyeballs takes."""
    infos: list[tuple] = []
    for found in hosts:
        address = found["host"]
        if ":" in address:
            infos.append(
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, found["port"], 0, 0))
            )
        else:
            infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, found["port"])))
    return infos


def _request_bytes(method: str, url: URL, headers, body: bytes) -> bytes:
    """The bytes aiohttp writes for this request (skip_auto_headers as set in
    proxy/runtime.py): request line, Host, the given headers, Content-Length."""
    lines = [f"{method} {url.raw_path_qs} HTTP/1.1\r\nHost: {url.host_port_subcomponent}\r\n"]
    for name, value in headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError("Newline or carriage return detected in headers.")
        lines.append(f"{name}: {value}\r\n")
    if body or method not in _GET_LIKE:
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8") + body


_NO_INFO = aiohttp.RequestInfo(URL(), "", CIMultiDictProxy(CIMultiDict()), URL())
