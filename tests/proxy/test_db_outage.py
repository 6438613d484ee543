"""The database dies mid-load: calls go on, their records wait in the
hand-off queue, and every call's event lands exactly once when it is back."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connection, connections
from django.db.models import Sum

from analytics.models import HourlyRollup, UsageEvent
from proxy.writer import queue_backlog
from tests.proxy.conftest import ProxyServer, proxy_settings
from tests.proxy.db_faults import SqliteLock, TcpRelay

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLIENTS = 6
CALLS_EACH = 40
TOTAL = CLIENTS * CALLS_EACH


@pytest.fixture
def outage(api_key, fake_provider, tmp_path):
    """(fault, server): a proxy whose ledger connection the fault can break.

    Depends on api_key so the test's own connection is opened first, directly:
    only connections opened by the proxy go through the fault.
    """
    db = connections.settings["default"]
    saved = {"HOST": db.get("HOST"), "PORT": db.get("PORT"), "OPTIONS": dict(db["OPTIONS"])}
    if connection.vendor == "postgresql":
        fault = TcpRelay(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432))
        fault.restore()
        db["HOST"], db["PORT"] = "127.0.0.1", str(fault.port)
    else:
        fault = SqliteLock(connection.settings_dict["NAME"])
        db["OPTIONS"]["timeout"] = 0.2  # fail fast instead of waiting 20 s for the lock
    with proxy_settings(fake_provider, tmp_path / "spool", AISPENDTRACK_FLUSH_INTERVAL=0.05):
        server = ProxyServer().start()
    try:
        yield fault, server
    finally:
        fault.restore()
        server.stop()
        fault.close()
        db["HOST"], db["PORT"] = saved["HOST"], saved["PORT"]
        db["OPTIONS"].clear()
        db["OPTIONS"].update(saved["OPTIONS"])


def test_database_outage_mid_load_loses_nothing_and_doubles_nothing(outage, api_key, tmp_path):
    fault, server = outage
    request_ids: list[str] = []
    done = threading.Semaphore(0)
    lock = threading.Lock()

    def client(number: int) -> None:
        headers = {"x-aispendtrack-key": api_key.raw, "x-customer-id": f"c{number}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            for call in range(CALLS_EACH):
                stream = call % 3 == 0
                response = http.post(
                    "/v1/chat/completions",
                    json={"model": "gpt-4o", "messages": [], "stream": stream},
                )
                assert response.status_code == 200
                with lock:
                    request_ids.append(response.headers["x-aispendtrack-request-id"])
                done.release()

    def until(predicate, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def wait_for(count: int) -> None:
        for _ in range(count):
            assert done.acquire(timeout=60)

    with server.writing() as writer, ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(client, n) for n in range(CLIENTS)]
        wait_for(TOTAL // 4)
        fault.cut()
        wait_for(TOTAL // 2)
        assert until(lambda: writer.outages > 0)  # the outage is real for the writer
        # Calls go on; their records wait in the queue (what /healthz reports).
        assert queue_backlog(tmp_path / "spool" / "queue")["records"] > 0
        fault.restore()
        for future in futures:
            future.result()

    events = server.events(TOTAL, timeout=30)
    assert len(request_ids) == TOTAL
    assert sorted(e.request_id for e in events) == sorted(request_ids)  # each exactly once
    assert queue_backlog(tmp_path / "spool" / "queue")["records"] == 0
    sums = UsageEvent.objects.aggregate(inp=Sum("input_tokens"), out=Sum("output_tokens"))
    rollups = HourlyRollup.objects.aggregate(
        calls=Sum("calls"), inp=Sum("input_tokens"), out=Sum("output_tokens")
    )
    assert rollups == {"calls": TOTAL, **sums}
