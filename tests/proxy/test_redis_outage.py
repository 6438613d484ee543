"""Redis is an accelerator, never a dependency: it dies mid-load and nothing fails.

The test runs its own redis-server on a free port (never the machine's
shared one), kills it under load, and starts it again on the same port.
"""

from __future__ import annotations

import logging
import threading
import time

import httpx
import pytest
from django.test import override_settings
from django.urls import reverse

from accounts.services import api_key_issue
from analytics.models import UsageEvent
from tests.conftest import PASSWORD
from tests.proxy.conftest import ProxyServer, proxy_settings
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


def test_redis_dies_mid_load_and_every_call_is_served(
    redis_server, fake_provider, api_key, org, owner, client, tmp_path, caplog
):
    caches = {
        "default": {
            "BACKEND": "config.cache.ResilientRedisCache",
            "LOCATION": redis_server.url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    _, cold_key = api_key_issue(organization=org, name="cold", scopes=["proxy"], created_by=owner)
    with override_settings(CACHES=caches), proxy_settings(fake_provider, tmp_path / "spool"):
        server = ProxyServer().start()
        try:
            _scenario(server, redis_server, api_key, cold_key, client, caplog)
        finally:
            server.stop()


def _scenario(server, redis_server, api_key, cold_key, client, caplog) -> None:
    # Starting the server re-ran Django's logging setup, which replaced the
    # root handlers: put caplog's back.
    logging.getLogger().addHandler(caplog.handler)
    caplog.set_level(logging.WARNING)
    served: list[str] = []
    failures: list[int] = []
    stop = threading.Event()
    lock = threading.Lock()

    def load() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while not stop.is_set():
                response = http.post(
                    "/v1/chat/completions",
                    json={"model": "gpt-4o", "messages": []},
                    headers={"x-aispendtrack-key": api_key.raw},
                )
                with lock:
                    if response.status_code == 200:
                        served.append(response.headers["x-aispendtrack-request-id"])
                    else:
                        failures.append(response.status_code)

    def wait_for_calls(count: int) -> None:
        target = len(served) + count
        deadline = time.monotonic() + 60
        while len(served) < target:
            assert time.monotonic() < deadline and not failures, failures[:5]
            time.sleep(0.01)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        wait_for_calls(30)
        redis_server.stop()
        wait_for_calls(60)  # well past the keys' local TTL: served from the database

        cold = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "gpt-4o", "messages": []},
            headers={"x-aispendtrack-key": cold_key},
            timeout=10,
        )
        assert cold.status_code == 200  # verified against the database
        served.append(cold.headers["x-aispendtrack-request-id"])
        health = httpx.get(f"{server.url}/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["redis"] == "down"
        api = httpx.get(
            f"{server.url}/api/costs/summary",
            headers={"authorization": f"Bearer {api_key.raw}"},
            timeout=10,
        )
        assert api.status_code == 200
        login = client.post(
            reverse("account_login"), {"login": "owner@acme.test", "password": PASSWORD}
        )
        assert login.status_code == 302
        assert client.get(reverse("team")).status_code == 200

        redis_server.start()  # same port: it comes back, nothing restarts
        deadline = time.monotonic() + 10
        while httpx.get(f"{server.url}/healthz", timeout=5).json()["redis"] != "ok":
            assert time.monotonic() < deadline, "Redis not picked up again"
            time.sleep(0.05)
        wait_for_calls(30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)

    assert failures == []
    events = server.events(len(served), timeout=30)
    assert sorted(e.request_id for e in events) == sorted(served)
    assert UsageEvent.objects.count() == len(served)
    # One warning for the outage, no traceback per call.
    cache_warnings = [r for r in caplog.records if r.name == "aispendtrack.cache"]
    assert 1 <= len(cache_warnings) <= 2
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.WARNING)
    logging.getLogger().removeHandler(caplog.handler)
