"""SIGKILL mid-load: a web worker, then the ledger writer.

`make serve`'s shape as processes: uvicorn with 2 workers and `manage.py
ledger_writer` beside them, the official openai SDK as the client, the fake
provider upstream. The oracle is what the client got: every answered call
is in the ledger exactly once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from django.conf import settings
from django.db.models import Sum

from analytics.models import HourlyRollup, UsageEvent
from tests.proxy.conftest import database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 8


class Host:
    """One host's processes: uvicorn (2 workers) and a ledger writer."""

    def __init__(self, fake_provider, tmp_path: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.queue = tmp_path / "queue"
        self.env = {
            **os.environ,
            "DEBUG": "1",
            "SECRET_KEY": "test-kill",
            "DATABASE_URL": database_url(),
            "REDIS_URL": "",
            "AISPENDTRACK_UPSTREAM_OPENAI": fake_provider.url,
            "AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS": "1",
            "AISPENDTRACK_QUEUE_DIR": str(self.queue),
            "AISPENDTRACK_SPOOL_DIR": str(tmp_path / "spool"),
            "AISPENDTRACK_VAR_DIR": str(settings.VAR_DIR),
            # Small, frequent batches: a kill is likely to land mid-write.
            "AISPENDTRACK_FLUSH_INTERVAL": "0.05",
            "AISPENDTRACK_FLUSH_MAX_EVENTS": "5",
            "LOG_LEVEL": "WARNING",
        }
        self.server = self._spawn(
            "-m", "uvicorn", "config.asgi:application", "--workers", "2", "--port", str(self.port)
        )
        self.writer = self.start_writer()

    def _spawn(self, *argv: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=self.env)  # noqa: S603

    def start_writer(self) -> subprocess.Popen:
        return self._spawn("manage.py", "ledger_writer")

    def workers(self) -> list[int]:
        """The uvicorn worker processes (multiprocessing spawns of the master)."""
        pid = self.server.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [
            int(child)
            for child in children
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
        ]

    def stop(self) -> None:
        for process in (self.server, self.writer):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (self.server, self.writer):
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@pytest.fixture
def host(fake_provider, tmp_path) -> Iterator[Host]:
    started = Host(fake_provider, tmp_path)
    try:
        assert until(lambda: _answers(started.url), timeout=60), "the server did not start"
        assert until(lambda: len(started.workers()) == 2, timeout=60)
        yield started
    finally:
        started.stop()


def until(predicate, timeout: float = 60) -> bool:
    """Wait for a condition, checking often; False if it never came."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Load:
    """CLIENTS threads calling through the proxy with the openai SDK until
    stopped; `answered` holds the request ids of every call the client got
    in full, `failed` counts calls that broke (a killed worker's)."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.answered: list[str] = []
        self.failed = 0
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(CLIENTS)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def wait_answered(self, count: int, timeout: float = 120) -> None:
        with self._lock:
            assert self._lock.wait_for(lambda: len(self.answered) >= count, timeout), (
                f"only {len(self.answered)} of {count} calls answered"
            )

    def _client(self, number: int) -> None:
        client = openai.OpenAI(
            base_url=f"{self.url}/v1",
            api_key="sk-upstream",
            max_retries=0,
            timeout=30,
            default_headers={"x-aispendtrack-key": self.key, "x-customer-id": f"c{number}"},
        )
        call = 0
        while not self._stop.is_set():
            call += 1
            try:
                request_id = self._call(client, stream=call % 3 == 0, slow=call % 4 == 0)
            except openai.APIError:
                with self._lock:
                    self.failed += 1
                continue
            with self._lock:
                self.answered.append(request_id)
                self._lock.notify_all()

    @staticmethod
    def _call(client: openai.OpenAI, *, stream: bool, slow: bool) -> str:
        """One call, read to its end; the request id it was recorded under."""
        # Some calls wait upstream, so a killed worker has calls in flight.
        headers = {"x-fake-hang": "0.2"} if slow else {}
        messages: list = [{"role": "user", "content": "Hi"}]
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=messages, stream=stream, extra_headers=headers
        )
        parsed = raw.parse()
        if isinstance(parsed, openai.Stream):
            assert list(parsed), "an empty stream"
        else:
            assert parsed.usage is not None
        return raw.headers["x-aispendtrack-request-id"]


def ledger_ids(org) -> list[str]:
    return list(UsageEvent.objects.filter(organization=org).values_list("request_id", flat=True))


def test_a_web_worker_killed_mid_load_loses_no_answered_call(host, api_key, org):
    with Load(host.url, api_key.raw) as load:
        load.wait_answered(60)
        victim = host.workers()[0]
        os.kill(victim, signal.SIGKILL)
        answered_at_kill = len(load.answered)
        load.wait_answered(answered_at_kill + 60)  # the other worker (and a respawn) go on

    answered = set(load.answered)
    assert len(answered) == len(load.answered)
    assert until(lambda: answered <= set(ledger_ids(org)), timeout=60), (
        f"{len(answered - set(ledger_ids(org)))} answered calls missing from the ledger"
    )
    # The writer finished the dead worker's file: nothing of it is left.
    assert until(lambda: not list(host.queue.glob(f"*-{victim}-*.jsonl")), timeout=30)
    ledger = ledger_ids(org)
    assert len(ledger) == len(set(ledger))  # nothing twice
    # Beyond the answered calls, only calls cut by the kill may be recorded
    # (handed off, then killed before the answer went out).
    assert len(ledger) - len(answered) <= load.failed


def test_a_writer_killed_mid_load_resumes_without_duplicates(host, api_key, org):
    with Load(host.url, api_key.raw) as load:
        load.wait_answered(40)
        assert until(lambda: len(ledger_ids(org)) > 0)  # the writer is writing
        host.writer.send_signal(signal.SIGKILL)
        host.writer.wait(10)
        load.wait_answered(len(load.answered) + 60)  # the queue grows meanwhile
        host.writer = host.start_writer()
        load.wait_answered(len(load.answered) + 40)

    assert load.failed == 0
    answered = sorted(load.answered)
    assert until(lambda: len(ledger_ids(org)) >= len(answered), timeout=60)
    assert sorted(ledger_ids(org)) == answered  # every answered call, exactly once
    calls = HourlyRollup.objects.filter(organization=org).aggregate(calls=Sum("calls"))["calls"]
    assert calls == len(answered)  # and counted once in the rollups
