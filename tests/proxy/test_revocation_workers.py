"""Revocation reaches every worker within 2 s, with several workers and no Redis.

`make serve`'s shape: uvicorn with 2 worker processes and no REDIS_URL, so
each worker's "shared" key cache is its own memory. The revoke happens in
another process (this one), as when an owner revokes on a page served by a
different worker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from accounts.services import api_key_revoke
from tests.proxy.conftest import database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def two_workers(fake_provider, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DEBUG": "1",
        "SECRET_KEY": "test-revocation-workers",
        "DATABASE_URL": database_url(),
        "REDIS_URL": "",
        "AISPENDTRACK_UPSTREAM_OPENAI": fake_provider.url,
        "AISPENDTRACK_SPOOL_DIR": str(tmp_path / "spool"),
        "AISPENDTRACK_VAR_DIR": str(settings.VAR_DIR),
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(  # noqa: S603 - fixed argv
        [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--workers",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)
    yield url
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(5)


def _call(url: str, key: str) -> int:
    # A new connection per call, so both workers get calls.
    with httpx.Client(timeout=10) as http:
        response = http.post(
            f"{url}/v1/chat/completions",
            json={"model": "gpt-4o", "messages": []},
            headers={"x-aispendtrack-key": key, "connection": "close"},
        )
    return response.status_code


def test_a_revoke_reaches_every_worker_within_two_seconds(two_workers, api_key, org):
    statuses = [_call(two_workers, api_key.raw) for _ in range(30)]
    assert statuses == [200] * 30  # the key is now cached in both workers

    api_key_revoke(organization=org, key=api_key.row)
    revoked_at = time.monotonic()
    last_accepted = None
    refused_in_a_row = 0
    while refused_in_a_row < 30:
        assert time.monotonic() - revoked_at < 30, "the revoke never took effect everywhere"
        status = _call(two_workers, api_key.raw)
        if status == 200:
            last_accepted, refused_in_a_row = time.monotonic(), 0
        else:
            assert status == 401
            refused_in_a_row += 1
    if last_accepted is not None:
        assert last_accepted - revoked_at <= 2.0
