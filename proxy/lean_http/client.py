"""The lean client's pool, addresses and connects (proxy/lean_http/__init__.py
says what it keeps from aiohttp)."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import ssl
from collections import deque

import aiohappyeyeballs
import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.client_reqrep import ConnectionKey
from yarl import URL

from proxy.lean_http.connection import Connection, LeanResponse, PoolKey

KEEPALIVE = 15.0  # aiohttp's keepalive_timeout
DNS_TTL = 300.0  # the runtime's ttl_dns_cache
HAPPY_EYEBALLS_DELAY = 0.25  # aiohttp's default
_GET_LIKE = frozenset({"GET", "HEAD", "OPTIONS", "CONNECT", "TRACE"})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def default_ssl_context() -> ssl.SSLContext:
    """aiohttp's verified default (loads the CA store: once, at import)."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(("http/1.1",))
    return context


_DEFAULT_SSL = default_ssl_context()


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
        self._idle: dict[PoolKey, deque[Connection]] = {}
        self._busy: set[Connection] = set()
        self._addresses: dict[tuple[str, int], tuple[float, list]] = {}
        self._resolving: dict[tuple[str, int], asyncio.Future] = {}

    async def request(self, method: str, url: URL, headers, body: bytes) -> LeanResponse:
        host, port, scheme = url.raw_host, url.port, url.scheme
        if not host or port is None or scheme not in ("http", "https"):
            raise aiohttp.InvalidURL(url)
        if method == "HEAD":  # its answer's framing is not its body's: aiohttp's case
            raise ValueError("the lean client does not send HEAD requests")
        key = (scheme, host, port)
        request = _request_bytes(method, url, headers, body)
        retry = True
        while True:
            conn = self._pooled(key) or await self._connect(key)
            self._busy.add(conn)
            try:
                return await conn.start(request)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
                self.release(conn, reusable=False)
                if not (retry and (method in _IDEMPOTENT or _never_read(conn, error))):
                    raise
                retry = False
            except BaseException:  # cancelled, timed out, malformed: never reused
                self.release(conn, reusable=False)
                raise

    def release(self, conn: Connection, *, reusable: bool) -> None:
        self._busy.discard(conn)
        if not (reusable and conn.open):
            conn.close()
            return
        conn.resume()  # its answer may have ended while reading was paused
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

    def _pooled(self, key: PoolKey) -> Connection | None:
        """The most recently used live connection (LIFO keeps fewer warm)."""
        idle = self._idle.get(key)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if conn.open and now - conn.idle_since <= KEEPALIVE:
                conn.reused = True
                return conn
            conn.close()
        return None

    async def _connect(self, key: PoolKey) -> Connection:
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
                            lambda: Connection(self, loop),
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


def _never_read(conn: Connection, error: Exception) -> bool:
    """A reset of a reused connection before any answer byte: our bytes met a
    socket the server had closed, unread (a server that read a request and
    died sends FIN, a clean close, and that is never replayed)."""
    return (
        conn.reused
        and not conn.answered
        and isinstance(error, aiohttp.ClientOSError)
        and error.errno in (errno.ECONNRESET, errno.EPIPE)
    )


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
