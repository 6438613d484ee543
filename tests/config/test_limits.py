"""Request limits, over raw sockets against uvicorn with config.httpguard's
protocol (as `make run` / `make serve` start it) serving the real application."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from django.core.asgi import get_asgi_application
from django.test import override_settings

from config.httpguard import GuardedHttpToolsProtocol
from proxy.asgi import build_application

pytestmark = pytest.mark.slow

LIMITS = {
    "AISPENDTRACK_MAX_HEADER_KB": 64,
    "AISPENDTRACK_HEADER_TIMEOUT": 1.0,
    "AISPENDTRACK_BODY_TIMEOUT": 1.0,
    "AISPENDTRACK_MAX_CONNECTIONS": 4,
}


class GuardedServer:
    def __init__(self) -> None:
        self.app = build_application(get_asgi_application())
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, lifespan="on", log_level="warning", http=GuardedHttpToolsProtocol
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )

    def __enter__(self) -> GuardedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def connect(self) -> socket.socket:
        client = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return client


@pytest.fixture
def server(transactional_db) -> Iterator[GuardedServer]:
    with override_settings(**LIMITS), GuardedServer() as running:
        yield running


def read_until_closed(client: socket.socket, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes the connection."""
    client.settimeout(timeout)
    chunks = []
    while True:
        try:
            chunk = client.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def send_all(client: socket.socket, data: bytes) -> int:
    """Send what the server accepts; how many bytes went before it closed."""
    sent = 0
    try:
        while sent < len(data):
            sent += client.send(data[sent : sent + 65536])
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def head(path: str, extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n" + extra


def test_a_head_just_under_64_kb_is_served(server):
    padding = b"x-padding: " + b"a" * (63 * 1024) + b"\r\n"
    client = server.connect()
    client.sendall(head("/favicon.ico", padding) + b"Connection: close\r\n\r\n")
    assert read_until_closed(client).startswith(b"HTTP/1.1 301 ")


def test_a_head_over_64_kb_is_431_and_the_rest_is_never_read(server):
    client = server.connect()
    big = head("/healthz", b"x-big: " + b"a" * (100 * 1024 * 1024) + b"\r\n\r\n")
    sent = send_all(client, big)
    answer = read_until_closed(client)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert b"exceed 64 KB" in answer
    # The server stopped reading long before 100 MB (kernel buffers aside).
    assert sent < 20 * 1024 * 1024


def test_a_long_url_counts_too(server):
    client = server.connect()
    send_all(client, b"GET /" + b"a" * (70 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_until_closed(client).startswith(b"HTTP/1.1 431 ")


def test_slowloris_head_is_closed_after_the_header_timeout(server):
    client = server.connect()
    client.sendall(b"GET /healthz HTTP/1.1\r\n")
    started = time.monotonic()
    client.settimeout(0.2)
    answer = b""
    for byte in b"X-Slow: " + b"a" * 100:  # one byte every 0.2 s, never finishing
        try:
            client.send(bytes([byte]))
            answer = client.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
        break  # the server spoke (and closed)
    answer += read_until_closed(client)
    waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
    assert 0.9 <= waited < 5


def test_a_silent_connection_is_closed_after_the_header_timeout(server):
    client = server.connect()
    started = time.monotonic()
    answer = read_until_closed(client)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert 0.9 <= time.monotonic() - started < 5


def test_an_unfinished_chunked_body_is_closed_after_the_body_timeout(server, api_key):
    client = server.connect()
    client.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        b"x-aispendtrack-key: " + api_key.raw.encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"mod\r\n'
    )
    started = time.monotonic()
    answer = read_until_closed(client)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert 0.9 <= time.monotonic() - started < 5


def test_keep_alive_requests_each_get_a_fresh_head_deadline(server):
    client = server.connect()
    for _ in range(3):
        client.sendall(head("/favicon.ico") + b"\r\n")
        client.settimeout(5)
        assert client.recv(65536).startswith(b"HTTP/1.1 301 ")
        time.sleep(0.6)  # 3 × 0.6 s > the 1 s head deadline, each request < 1 s
    client.close()


def test_connections_beyond_the_cap_get_503_and_are_closed(server):
    held = [server.connect() for _ in range(LIMITS["AISPENDTRACK_MAX_CONNECTIONS"])]
    extra = server.connect()
    # 503, not the 408 a held connection gets at its head deadline: refused at once.
    assert read_until_closed(extra).startswith(b"HTTP/1.1 503 Service Unavailable")
    for client in held:
        client.close()
