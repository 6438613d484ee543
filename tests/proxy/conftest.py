"""End-to-end harness: the fake provider and the proxy under a real uvicorn.

The proxy runs in a background thread of the test process (its own event
loop), so it shares the test database; tests that go through it are
`django_db(transaction=True)` so their rows are visible to its threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.db import connection
from django.test import override_settings

from analytics.models import UsageEvent
from config.httpguard import GuardedHttpToolsProtocol
from proxy.asgi import build_application
from proxy.writer import LedgerWriter, close_db_connections
from tests.proxy.fake_provider import FakeProvider


class ProxyServer:
    """config.asgi's application, built the same way, served by uvicorn on loopback
    with `make serve`'s protocol class (config.httpguard) unless `http` names another."""

    def __init__(self, http: str | type = GuardedHttpToolsProtocol) -> None:
        self.http = http
        self.app = build_application(get_asgi_application())
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.writer: LedgerWriter | None = None

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
            http=self.http,
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
        # What `manage.py ledger_writer` runs, driven by the test (flush()).
        self.writer = LedgerWriter(
            queue_dir=settings.AISPENDTRACK_QUEUE_DIR,
            spool_dir=settings.AISPENDTRACK_SPOOL_DIR,
            batch=int(settings.AISPENDTRACK_FLUSH_MAX_EVENTS),
            write_timeout=float(settings.AISPENDTRACK_LEDGER_WRITE_TIMEOUT),
        )
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(15)
        if self.writer is not None:
            self.writer.close()

    def call(self, coroutine, timeout: float = 30):
        """Run a coroutine on the server's loop from the test thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.runtime.loop).result(timeout)

    def flush(self) -> int:
        """Write everything handed off so far to the ledger now, in this thread,
        through the writer's own passes (and replay old spool files); returns
        events written. Raises the database's error when it is away."""
        assert self.writer is not None
        return self.writer.drain()

    @contextlib.contextmanager
    def writing(self, interval: float = 0.05) -> Iterator[LedgerWriter]:
        """The writer looping in a thread of its own (its own database
        connection), as `manage.py ledger_writer` runs beside the web workers;
        stopped on exit (it drains what it can, bounded)."""
        assert self.writer is not None
        writer, stop = self.writer, threading.Event()

        def loop() -> None:
            try:
                writer.run(stop, interval=interval)
            finally:
                close_db_connections()

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield writer
        finally:
            stop.set()
            thread.join(30)

    def events(self, expected: int, *, timeout: float = 10, **filters) -> list[UsageEvent]:
        """Drain until `expected` events match (bounded); returns them, oldest first."""
        deadline = time.monotonic() + timeout
        while True:
            self.flush()
            events = list(UsageEvent.objects.filter(**filters).order_by("created_at", "id"))
            if len(events) >= expected or time.monotonic() > deadline:
                return events
            time.sleep(0.05)


def database_url() -> str:
    """The test database as DATABASE_URL, for servers and writers run as subprocesses."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def proxy_settings(fake: FakeProvider, spool_dir, **extra) -> override_settings:
    # Tests register providers on loopback (the fake, dead ports): allowed here;
    # tests/proxy/test_upstream_guard.py runs a proxy with the guard on.
    extra.setdefault("AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS", True)
    return override_settings(
        AISPENDTRACK_UPSTREAM_OPENAI=fake.url,
        AISPENDTRACK_UPSTREAM_ANTHROPIC=fake.url,
        AISPENDTRACK_UPSTREAM_GEMINI=fake.url,
        AISPENDTRACK_SPOOL_DIR=spool_dir,
        AISPENDTRACK_QUEUE_DIR=Path(spool_dir) / "queue",
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
    """The running proxy; after the test its queue is drained while the DB is open."""
    fake_provider.received.clear()
    yield proxy_server
    proxy_server.flush()
