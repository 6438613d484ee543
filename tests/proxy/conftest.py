"""End-to-end harness: the fake provider and the proxy under a real uvicorn.

The proxy runs in a background thread of the test process (its own event
loop), so it shares the test database; tests that go through it are
`django_db(transaction=True)` so their rows are visible to its threads.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from django.core.asgi import get_asgi_application
from django.test import override_settings

from analytics.models import UsageEvent
from proxy.asgi import build_application
from tests.proxy.fake_provider import FakeProvider


class ProxyServer:
    """config.asgi's application, built the same way, served by uvicorn on loopback."""

    def __init__(self) -> None:
        self.app = build_application(get_asgi_application())
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def runtime(self):
        return self.app.runtime

    def start(self) -> ProxyServer:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="on",
            log_level="warning",
            server_header=False,
            date_header=False,
            http="httptools",
            loop="asyncio",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("proxy server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(15)

    def call(self, coroutine, timeout: float = 30):
        """Run a coroutine on the server's loop from the test thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.runtime.loop).result(timeout)

    def flush(self) -> int:
        """Write everything buffered to the ledger now (and replay the spool)."""
        return self.call(self.runtime.buffer.flush_now())

    def events(self, expected: int, *, timeout: float = 10, **filters) -> list[UsageEvent]:
        """Flush until `expected` events match (bounded); returns them, oldest first."""
        deadline = time.monotonic() + timeout
        while True:
            self.flush()
            events = list(UsageEvent.objects.filter(**filters).order_by("created_at", "id"))
            if len(events) >= expected or time.monotonic() > deadline:
                return events
            time.sleep(0.05)


def proxy_settings(fake: FakeProvider, spool_dir, **extra) -> override_settings:
    # Tests register providers on loopback (the fake, dead ports): allowed here;
    # tests/proxy/test_upstream_guard.py runs a proxy with the guard on.
    extra.setdefault("AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS", True)
    return override_settings(
        AISPENDTRACK_UPSTREAM_OPENAI=fake.url,
        AISPENDTRACK_UPSTREAM_ANTHROPIC=fake.url,
        AISPENDTRACK_UPSTREAM_GEMINI=fake.url,
        AISPENDTRACK_SPOOL_DIR=spool_dir,
        **extra,
    )


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProvider]:
    fake = FakeProvider().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def proxy_server(django_db_setup, django_db_blocker, fake_provider, tmp_path_factory):
    spool_dir = tmp_path_factory.mktemp("spool")
    with proxy_settings(fake_provider, spool_dir, AISPENDTRACK_READ_TIMEOUT=2.0):
        server = ProxyServer().start()
    yield server
    with django_db_blocker.unblock():
        server.stop()


@pytest.fixture
def proxy(proxy_server, transactional_db, fake_provider) -> Iterator[ProxyServer]:
    """The running proxy; after the test its buffer is flushed while the DB is open."""
    fake_provider.received.clear()
    yield proxy_server
    proxy_server.flush()
