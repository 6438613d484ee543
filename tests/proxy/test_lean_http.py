"""The lean upstream client (proxy/lean_http/) against raw local servers we
script byte by byte. Where aiohttp's behaviour is the bar (the bytes sent,
the errors and their 502/504 mapping, a half-dead pooled connection), the
same scenario runs through an aiohttp session configured as proxy/runtime.py
configures it, and the two outcomes are compared: aiohttp is the oracle."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import struct
import subprocess
from types import SimpleNamespace

import aiohttp
import pytest
import uvloop
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from yarl import URL

from proxy.lean_http import LeanClient
from proxy.resolver import PublicResolver
from proxy.runtime import SKIP_AUTO_HEADERS
from proxy.upstream import UpstreamFailed, open_upstream

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def run(coroutine_function):
    """Under uvloop, as the proxy runs."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine_function())


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request's head and body as received, None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    found = re.search(rb"(?i)\r\ncontent-length: (\d+)", head)
    return head + (await reader.readexactly(int(found.group(1))) if found else b"")


class RawServer:
    """Each connection runs `script(server, reader, writer)`; counts connections."""

    def __init__(self, script, ssl_context: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.ssl_context = ssl_context
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed = asyncio.Event()

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _serve(self, reader, writer) -> None:
        self.connections += 1
        try:
            await self.script(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self.closed.set()

    def url(self, path: str = "/v1/chat/completions", host: str = "127.0.0.1") -> URL:
        return URL(f"http://{host}:{self.port}{path}", encoded=True)


async def keep_alive(server: RawServer, reader, writer, answer: bytes = OK) -> None:
    while (request := await read_request(reader)) is not None:
        server.requests.append(request)
        writer.write(answer)
        await writer.drain()


def lean(resolver=None, **options) -> LeanClient:
    timeouts = {"connect_timeout": 2.0, "read_timeout": 2.0, **options}
    return LeanClient(resolver=resolver or DefaultResolver(), **timeouts)


def session(
    resolver=None, ssl_context=None, *, connect_timeout: float = 2.0, read_timeout: float = 2.0
) -> aiohttp.ClientSession:
    """proxy/runtime.py's session."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=0, ttl_dns_cache=300, resolver=resolver, ssl=ssl_context or True
        ),
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        ),
        auto_decompress=False,
        skip_auto_headers=SKIP_AUTO_HEADERS,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )


async def outcome(client, method: str, url: URL, headers=(), body: bytes = b""):
    """(status, body) or the UpstreamFailed open_upstream maps the failure to."""
    runtime = SimpleNamespace(literal_guard=None, lean=None, session=None)
    if isinstance(client, LeanClient):
        runtime.lean = client
    else:
        runtime.session = client
    try:
        response = await open_upstream(runtime, method, url, list(headers), body, stream=False)
    except UpstreamFailed as failure:
        return failure
    try:
        return response.status, b"".join([chunk async for chunk in response.content.iter_any()])
    finally:
        response.release()


async def both(scenario, **timeouts):
    """The scenario's result with the lean client and with aiohttp."""
    client, oracle = lean(**timeouts), session(**timeouts)
    try:
        return await scenario(client), await scenario(oracle)
    finally:
        await client.close()
        await oracle.close()


# --- the bytes sent ------------------------------------------------------------------

REQUESTS = [
    (
        "POST",
        "/v1/chat/completions",
        [("authorization", "Bearer sk"), ("Content-Type", "a/b")],
        b"{}",
    ),
    ("POST", "/v1/a%2Fb?x=1%20&y", [("x-note", "caf\xe9")], b""),  # latin-1 text as split gives it
    ("GET", "/v1/models", [("accept", "*/*")], b""),
    ("DELETE", "/v1/files/f", [], b""),
    ("OPTIONS", "/", [], b""),
]


def test_request_bytes_are_aiohttps():
    async def scenario(client):
        async with RawServer(keep_alive) as server:
            for method, path, headers, body in REQUESTS:
                assert await outcome(client, method, server.url(path), headers, body) == (
                    200,
                    b"ok",
                )
            port = str(server.port).encode()
            return [sent.replace(port, b"PORT") for sent in server.requests], server.connections

    (sent, connections), (expected, _) = run(lambda: both(scenario))
    assert sent == expected and len(sent) == len(REQUESTS)
    assert connections == 1  # one pooled connection served them all


# --- answers -------------------------------------------------------------------------

ANSWERS = {
    "length": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", [b"he", b"llo"], b"hello"),
    "chunked": (
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n",
        [b"3\r\nabc\r\n", b"2\r\nde\r\n0\r\n\r\n"],
        b"abcde",
    ),
    "no content": (b"HTTP/1.1 204 No Content\r\n\r\n", [], b""),
    "not modified": (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", [], b""),
    "interim": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n",
        [b"x"],
        b"x",
    ),
}


@pytest.mark.parametrize("name", ANSWERS)
def test_answers_are_read_and_the_connection_reused(name):
    head, parts, expected = ANSWERS[name]

    async def script(server, reader, writer):
        while await read_request(reader) is not None:
            writer.write(head)
            for part in parts:
                await writer.drain()
                writer.write(part)
            await writer.drain()

    async def scenario():
        client = lean()
        async with RawServer(script) as server:
            for _ in range(2):
                status, body = await outcome(client, "POST", server.url(), body=b"{}")
                assert body == expected
            assert server.connections == 1
        await client.close()
        return status

    assert run(scenario) == (200 if name == "interim" else int(head.split(b" ")[1]))


def test_headers_and_an_answer_until_close():
    async def script(server, reader, writer):
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nX-Request-Id: r1\r\nx-request-id: r2\r\n\r\n"
        )
        writer.write(b"until the end")

    async def scenario():
        client = lean()
        async with RawServer(script) as server:
            for _ in range(2):
                response = await client.request("GET", server.url(), [], b"")
                assert response.headers.get("X-REQUEST-ID") == "r1"  # the first, as aiohttp
                assert response.headers.get("content-length") is None
                assert (b"X-Request-Id", b"r1") in response.raw_headers
                body = b"".join([chunk async for chunk in response.content.iter_any()])
                assert body == b"until the end"
                response.release()
            assert server.connections == 2  # Connection: close is honoured
        await client.close()

    run(scenario)


def test_a_large_body_flows_through_and_the_connection_is_reused():
    size = 9 * 1024 * 1024  # past proxy.relay.BUFFER_LIMIT

    async def script(server, reader, writer):
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            for _ in range(size // 65536):
                writer.write(b"z" * 65536)
                await writer.drain()

    async def scenario():
        client = lean()
        async with RawServer(script) as server:
            for _ in range(2):
                assert await outcome(client, "POST", server.url(), body=b"{}") == (200, b"z" * size)
            assert server.connections == 1
        await client.close()

    run(scenario)


# --- pooled connections the server closed --------------------------------------------


def test_a_connection_the_server_closed_while_idle_is_not_reused():
    async def script(server, reader, writer):
        await read_request(reader)
        writer.write(OK)  # keep-alive promised, then closed (the server's idle timeout)
        await writer.drain()

    async def scenario():
        client = lean()
        async with RawServer(script) as server:
            assert await outcome(client, "POST", server.url(), body=b"{}") == (200, b"ok")
            await server.closed.wait()
            for _ in range(200):  # until the loop has seen the FIN
                if not any(conn.open for conn in client._idle[("http", "127.0.0.1", server.port)]):
                    break
                await asyncio.sleep(0.005)
            assert await outcome(client, "POST", server.url(), body=b"{}") == (200, b"ok")
            assert server.connections == 2
        await client.close()

    run(scenario)


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_half_dead_connection_fails_as_with_aiohttp(method):
    """The server closes as the second request arrives: aiohttp replays
    idempotent methods once on a fresh connection and gives a POST its 502."""

    async def script(server, reader, writer):
        if server.connections == 1:
            await read_request(reader)
            writer.write(OK)
            await writer.drain()
            await read_request(reader)  # the second request, never answered
        else:
            await keep_alive(server, reader, writer)

    async def scenario(client):
        async with RawServer(script) as server:
            first = await outcome(client, method, server.url(), body=b"{}")
            second = await outcome(client, method, server.url(), body=b"{}")
            return first, second, server.connections

    lean_result, aiohttp_result = run(lambda: both(scenario))
    assert lean_result == aiohttp_result
    if method == "POST":
        assert lean_result[1] == UpstreamFailed(502, "ServerDisconnectedError")
    else:
        assert lean_result == ((200, b"ok"), (200, b"ok"), 2)


def test_a_reset_of_a_reused_connection_is_replayed_on_a_fresh_one():
    """The server answers, then resets the connection (closed with unread
    bytes) as our next request arrives: that request was never read, so the
    lean client sends it again on a fresh connection, a POST too (aiohttp
    gives a POST its 502 here: the one place the lean client does better)."""

    async def script(server, reader, writer):
        if server.connections > 1:
            return await keep_alive(server, reader, writer)
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        await reader.read(1)  # the next request has arrived: drop it with a reset
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return None

    async def scenario():
        client = lean()
        async with RawServer(script) as server:
            for _ in range(2):
                assert await outcome(client, "POST", server.url(), body=b"{}") == (200, b"ok")
            assert server.connections == 2
        await client.close()

    run(scenario)


def test_a_cancelled_answer_closes_its_connection():
    async def script(server, reader, writer):
        await read_request(reader)
        if server.connections == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            await writer.drain()
            server.requests.append(await reader.read())  # b"" once the client closes
        else:
            writer.write(OK)

    async def scenario():
        client = lean(read_timeout=60.0)  # the close must come from the cancel, not a timer
        async with RawServer(script) as server:
            first_chunk = asyncio.Event()

            async def call():
                response = await client.request("POST", server.url(), [], b"{}")
                try:
                    async for _ in response.content.iter_any():
                        first_chunk.set()
                finally:
                    response.release()  # as proxy/endpoint.py's _forward

            task = asyncio.create_task(call())
            await first_chunk.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async with asyncio.timeout(5):
                await server.closed.wait()
            assert server.requests == [b""]  # the half-read connection was closed
            assert await outcome(client, "POST", server.url(), body=b"{}") == (200, b"ok")
            assert server.connections == 2
        await client.close()

    run(scenario)


# --- failures and their mapping ------------------------------------------------------


async def silent(server, reader, writer) -> None:
    await reader.read()  # accepts, never answers (nor completes a TLS handshake)


def test_timeouts_and_failures_map_as_with_aiohttp():
    async def scenario(client):
        results = []
        async with RawServer(silent) as server:
            results.append(await outcome(client, "POST", server.url(), body=b"{}"))
            https = URL(f"https://127.0.0.1:{server.port}/v1", encoded=True)
            results.append(await outcome(client, "POST", https, body=b"{}"))
        refused = await outcome(client, "POST", server.url(), body=b"{}")
        refused.reason = refused.reason.replace(str(server.port), "PORT")
        return [*results, refused]

    lean_result, aiohttp_result = run(lambda: both(scenario, read_timeout=0.3, connect_timeout=0.3))
    assert lean_result == aiohttp_result
    read, connect, refused = lean_result
    assert (read.status, read.reason, read.connect) == (504, "read timeout", False)
    assert (connect.status, connect.reason, connect.connect) == (504, "connect timeout", True)
    assert refused.status == 502 and refused.reason.startswith("connection failed: ")


def test_a_stalled_body_times_out():
    async def script(server, reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await reader.read()

    async def scenario():
        client = lean(read_timeout=0.3)
        async with RawServer(script) as server:
            response = await client.request("POST", server.url(), [], b"{}")
            chunks = []
            with pytest.raises(TimeoutError):  # proxy/relay.py's 504 / Status.TIMEOUT
                async for chunk in response.content.iter_any():
                    chunks.append(chunk)
            response.release()
            assert chunks == [b"abc"]
        await client.close()

    run(scenario)


def test_a_cut_body_is_a_client_error():
    async def script(server, reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")

    async def scenario():
        client = lean()
        async with RawServer(script) as server:
            response = await client.request("POST", server.url(), [], b"{}")
            with pytest.raises(aiohttp.ClientError):  # proxy/relay.py's 502 / UPSTREAM_ERROR
                async for _ in response.content.iter_any():
                    pass
            response.release()
        await client.close()

    run(scenario)


# --- addresses -----------------------------------------------------------------------


class CountingResolver(AbstractResolver):
    def __init__(self) -> None:
        self.inner = DefaultResolver()
        self.asked: list[str] = []

    async def resolve(self, host, port=0, family=0):
        self.asked.append(host)
        return await self.inner.resolve(host, port, family)

    async def close(self) -> None:
        await self.inner.close()


def test_names_resolving_to_internal_addresses_are_refused():
    async def scenario(client):
        async with RawServer(keep_alive) as server:
            failure = await outcome(client, "POST", server.url(host="localhost"), body=b"{}")
            return failure, server.connections

    async def guarded():
        client = lean(PublicResolver(trusted=frozenset()))
        oracle = session(PublicResolver(trusted=frozenset()))
        try:
            return await scenario(client), await scenario(oracle)
        finally:
            await client.close()
            await oracle.close()

    (failure, connections), aiohttp_result = run(guarded)
    assert (failure, connections) == aiohttp_result
    assert failure.status == 502 and "internal address" in failure.reason
    assert "AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS" in failure.reason
    assert connections == 0  # nothing was sent to the internal address


def test_names_are_resolved_once_per_ttl_when_private_upstreams_are_allowed():
    async def script(server, reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")

    async def scenario():
        resolver = CountingResolver()
        client = lean(resolver)
        async with RawServer(script) as server:
            for _ in range(3):
                url = server.url(host="localhost")
                assert await outcome(client, "POST", url, body=b"{}") == (200, b"ok")
            assert server.connections == 3
        await client.close()
        return resolver.asked

    assert run(scenario) == ["localhost"]


# --- TLS -----------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for localhost (openssl CLI)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", key, "-out", cert, "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, cert


def test_tls_verifies_the_certificate_and_the_host_name(certificate):
    server_context, cert = certificate

    async def scenario(trusted: bool):
        context = ssl.create_default_context(cafile=str(cert)) if trusted else None
        client = lean(ssl_context=context)
        oracle = session(ssl_context=context)
        results = []
        async with RawServer(keep_alive, ssl_context=server_context) as server:
            for host in ("localhost", "127.0.0.1"):  # the certificate names localhost only
                url = URL(f"https://{host}:{server.port}/v1", encoded=True)
                results.append(
                    (
                        await outcome(client, "POST", url, body=b"{}"),
                        await outcome(oracle, "POST", url, body=b"{}"),
                    )
                )
        await client.close()
        await oracle.close()
        return results

    (good, wrong_name) = run(lambda: scenario(True))
    assert good == ((200, b"ok"), (200, b"ok"))
    assert wrong_name[0] == wrong_name[1] and "certificate verify failed" in wrong_name[0].reason
    (untrusted, _) = run(lambda: scenario(False))
    assert untrusted[0] == untrusted[1] and untrusted[0].status == 502
