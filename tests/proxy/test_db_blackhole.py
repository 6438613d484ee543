"""A database that stops answering without closing: every wait is bounded.

The proxy's connections go through a TCP relay that the test black-holes
(bytes held, nothing closed). Warm keys keep being served and recorded;
a cold key gets 503 in the provider's shape within 5 s; /healthz says
"database": "down" within 2 s; the ledger writer's writes give up after the
write timeout and the records wait in the hand-off queue; shutdown finishes
within 15 s; everything lands once the database answers again.
"""

from __future__ import annotations

import time

import httpx
import pytest
from django.db import connection, connections

from accounts.services import api_key_issue
from analytics.models import UsageEvent
from proxy.writer import queue_backlog
from tests.proxy.conftest import ProxyServer, proxy_settings
from tests.proxy.db_faults import TcpRelay

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def relay_server(api_key, fake_provider, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("a TCP black hole needs a networked database (CI runs PostgreSQL)")
    db = connections.settings["default"]
    saved = {"HOST": db.get("HOST"), "PORT": db.get("PORT")}
    relay = TcpRelay(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432))
    relay.restore()
    db["HOST"], db["PORT"] = "127.0.0.1", str(relay.port)
    with proxy_settings(
        fake_provider,
        tmp_path / "spool",
        AISPENDTRACK_FLUSH_INTERVAL=0.05,
        AISPENDTRACK_KEY_LOOKUP_TIMEOUT=2.0,
        AISPENDTRACK_LEDGER_WRITE_TIMEOUT=2.0,
    ):
        server = ProxyServer().start()
        try:
            yield relay, server
        finally:
            relay.restore()
            server.stop()
            relay.close()
            db["HOST"], db["PORT"] = saved["HOST"], saved["PORT"]
            connections.close_all()  # this thread's connection may have gone through the relay


def _chat(server, key: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": []},
        headers={"x-aispendtrack-key": key},
        timeout=30,
    )


def test_a_black_holed_database_bounds_every_wait(relay_server, api_key, owner, tmp_path):
    relay, server = relay_server
    _, cold_key = api_key_issue(
        organization=api_key.row.organization, name="cold", scopes=["proxy"], created_by=owner
    )
    served = [_chat(server, api_key.raw)]  # warms the key
    assert served[0].status_code == 200
    assert len(server.events(1)) == 1

    healthy = httpx.get(f"{server.url}/healthz", timeout=10)  # also loads Django's URLconf
    assert healthy.status_code == 200 and healthy.json()["database"] == "ok"
    relay.black_hole()
    started = time.monotonic()
    cold = _chat(server, cold_key)
    assert cold.status_code == 503
    assert time.monotonic() - started < 5.0
    assert cold.json()["error"]["code"] == "aispendtrack_busy"

    started = time.monotonic()
    health = httpx.get(f"{server.url}/healthz", timeout=10)
    assert time.monotonic() - started < 2.0
    assert health.status_code == 503 and health.json()["database"] == "down"

    # The warm key is served the whole time; its records wait in the queue
    # while the writer's writes time out.
    with server.writing() as writer:
        for _ in range(20):
            response = _chat(server, api_key.raw)
            assert response.status_code == 200
            served.append(response)
        deadline = time.monotonic() + 30
        while writer.outages == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.outages == 1
    assert queue_backlog(tmp_path / "spool" / "queue")["records"] == 20

    started = time.monotonic()
    server.stop()  # what SIGTERM does: lifespan shutdown
    assert time.monotonic() - started < 15.0

    relay.restore()
    connections.close_all()
    assert server.writer is not None
    server.writer.drain()
    ids = {r.headers["x-aispendtrack-request-id"] for r in served}
    assert set(UsageEvent.objects.values_list("request_id", flat=True)) == ids
