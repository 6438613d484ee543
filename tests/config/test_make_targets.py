"""`make serve` and `make run` as a user runs them, from a clean copy of the
repository: a subprocess on a free port, driven over HTTP, stopped by signal.

`make serve` runs on CI's PostgreSQL and Redis (DATABASE_URL / REDIS_URL) with
DEBUG off; `make run` on its laptop defaults (SQLite under var/, filesystem
broker, Celery worker + beat beside uvicorn). The copy reuses this checkout's
virtualenv through a symlink, so make finds it installed and starts at once.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from tests.proxy.fake_provider import FakeProvider

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = os.environ.get("DATABASE_URL", "").startswith("postgres")
# What pytest, pytest-env and an outer `make test` put in the environment; a
# user's shell has none of it.
NOT_A_USERS = {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"}
STARTUP_SECONDS = 240
RUN = uuid.uuid4().hex[:8]  # CI's database outlives a run: names never repeat


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def clean_copy(tmp_path_factory) -> Path:
    """The repository's files as a fresh clone has them (tracked and new, not
    ignored: no var/, no collected static files), with this checkout's venv."""
    installed = ROOT / ".venv" / ".installed"
    if (
        not installed.exists()
        or installed.stat().st_mtime < (ROOT / "pyproject.toml").stat().st_mtime
    ):
        pytest.fail("the virtualenv is older than pyproject.toml: run `make install` first")
    copy = tmp_path_factory.mktemp("clone")
    listed = subprocess.run(  # noqa: S603
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)  # keeps mtimes: make sees the venv as current
    (copy / ".venv").symlink_to((ROOT / ".venv").resolve())
    assert not (copy / "var").exists()
    return copy


@pytest.fixture(scope="module")
def upstream():
    fake = FakeProvider().start()
    yield fake
    fake.stop()


def users_environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in NOT_A_USERS}
    environment = {k: v for k, v in environment.items() if not k.startswith("PYTEST")}
    environment.update(extra)
    return environment


class Started:
    """A make target running in its own process group, its output in a file."""

    def __init__(self, copy: Path, target: str, environment: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = copy / f"{target}.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603
            ["make", target],  # noqa: S607
            cwd=copy,
            env={**environment, "PORT": str(self.port)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"make exited early:\n{self.output()[-3000:]}"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        pytest.fail(f"not healthy after {STARTUP_SECONDS} s:\n{self.output()[-3000:]}")

    def stop(self, signum: int, *, group: bool) -> float:
        """Signal make (or its whole group, as Ctrl-C does); seconds until all exited."""
        started = time.monotonic()
        if group:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)
        try:
            self.process.wait(timeout=30)
        finally:
            self.kill_leftovers()
        while self.group_alive() and time.monotonic() - started < 30:
            time.sleep(0.1)
        return time.monotonic() - started

    def group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill_leftovers(self) -> None:
        if self.process.poll() is None or self.group_alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()


def manage(copy: Path, environment: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603
        [str(copy / ".venv" / "bin" / "python"), "manage.py", *args],
        cwd=copy,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def proxied_call(url: str, key: str, **headers: str) -> str:
    """One chat completion through the proxy; the request id it was recorded under."""
    client = openai.OpenAI(
        base_url=f"{url}/v1",
        api_key="sk-upstream",
        max_retries=0,
        timeout=30,
        default_headers={"x-aispendtrack-key": key, **headers},
    )
    response = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hi"}]
    )
    usage = response.parse().usage
    assert usage is not None and usage.total_tokens == 80
    return response.headers["x-aispendtrack-request-id"]


def ledger_count(database_url: str, request_ids: list[str]) -> int:
    import psycopg

    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM analytics_usageevent WHERE request_id::text = ANY(%s)",
            [request_ids],
        ).fetchone()
    assert row is not None
    return row[0]


def api_calls(url: str, key: str) -> int:
    response = httpx.get(
        f"{url}/api/costs/summary", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()["total_calls"]


def writer_running(url: str) -> bool:
    """/healthz says a ledger writer runs beside the web workers."""
    return httpx.get(f"{url}/healthz", timeout=10).json()["queue"]["writer"] == "running"


def queue_files(copy: Path) -> list[str]:
    """Hand-off queue files left on disk (each deleted once written)."""
    return [path.name for path in (copy / "var" / "queue").glob("*.jsonl")]


def wait_for(predicate, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.skipif(not POSTGRES, reason="make serve runs on PostgreSQL + Redis (CI sets them)")
def test_make_serve_from_a_clean_copy(clean_copy, upstream):
    database_url = os.environ["DATABASE_URL"]
    environment = users_environment(
        AISPENDTRACK_UPSTREAM_OPENAI=upstream.url,
        AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS="1",  # the fake provider is on loopback
        WEB_CONCURRENCY="2",
    )
    server = Started(clean_copy, "serve", environment)
    try:
        server.wait_healthy()
        assert "generated var/secret_key" in server.output()

        # A page and its static files, by their hashed names, with DEBUG off.
        page = httpx.get(f"{server.url}/accounts/login/", timeout=10)
        assert page.status_code == 200
        assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
        assert {asset.rsplit(".", 1)[-1] for asset in assets} >= {"css", "js", "svg"}
        for asset in assets:
            assert re.search(r"\.[0-9a-f]{12}\.(css|js|svg)$", asset), asset
            assert httpx.get(f"{server.url}{asset}", timeout=10).status_code == 200, asset
        missing = httpx.get(f"{server.url}/no-such-page/", timeout=10)
        assert missing.status_code == 404 and "Page not found" in missing.text
        assert "Traceback" not in missing.text  # DEBUG is off

        # A command from the README, with no variable set by hand.
        key = (
            manage(
                clean_copy,
                users_environment(),
                "bootstrap_org",
                "--org",
                f"Serve CI {RUN}",
                "--email",
                f"serve-{RUN}@example.com",
            )
            .strip()
            .splitlines()[-1]
        )
        assert key.startswith("ask_")

        # One proxied call reaches the ledger through the writer; the API reads it.
        assert wait_for(lambda: writer_running(server.url), timeout=60)
        first = proxied_call(server.url, key)
        assert wait_for(lambda: ledger_count(database_url, [first]) == 1)
        assert wait_for(lambda: api_calls(server.url, key) == 1)

        # SIGTERM while calls are in flight: they finish, are recorded, and all
        # processes are gone within 10 s.
        with ThreadPoolExecutor(8) as pool:
            slow = [
                pool.submit(proxied_call, server.url, key, **{"x-fake-hang": "1.5"})
                for _ in range(8)
            ]
            assert wait_for(lambda: len(upstream.received) >= 9, timeout=10)
            took = server.stop(signal.SIGTERM, group=False)
            in_flight = [future.result() for future in slow]
        assert took < 10, f"took {took:.1f} s to stop"
        assert not server.group_alive()
        # The writer outlived the web workers and wrote their last calls.
        assert ledger_count(database_url, [first, *in_flight]) == 9
        assert queue_files(clean_copy) == []
    finally:
        server.kill_leftovers()

    log = server.output()
    assert "Mail is disabled" in log
    assert key not in log  # the raw key is shown once, by bootstrap_org, never logged


def test_make_run_from_a_clean_copy(clean_copy, upstream):
    """The laptop path: no DATABASE_URL, REDIS_URL or anything else set."""
    environment = users_environment(
        AISPENDTRACK_UPSTREAM_OPENAI=upstream.url, AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS="1"
    )
    for name in ("DATABASE_URL", "REDIS_URL", "CI"):
        environment.pop(name, None)
    server = Started(clean_copy, "run", environment)
    try:
        server.wait_healthy()
        assert wait_for(lambda: re.search(r"celery@\S+ ready", server.output()), timeout=60)
        assert "beat: Starting" in server.output()
        assert httpx.get(f"{server.url}/accounts/login/", timeout=10).status_code == 200

        # Scripts use the README's command beside the running server.
        key = (
            manage(
                clean_copy, environment, "bootstrap_org", "--org", "Run CI", "--email", "run@ex.com"
            )
            .strip()
            .splitlines()[-1]
        )
        assert wait_for(lambda: writer_running(server.url), timeout=60)
        proxied_call(server.url, key)
        assert wait_for(lambda: api_calls(server.url, key) == 1)  # written by the writer

        # Ctrl-C stops uvicorn, the Celery worker and beat, all within 10 s.
        took = server.stop(signal.SIGINT, group=True)
        assert took < 10, f"took {took:.1f} s to stop:\n{server.output()[-2000:]}"
        assert not server.group_alive()
    finally:
        server.kill_leftovers()
    log = server.output()
    assert "Application shutdown complete" in log
    assert "ledger writer stopped" in log
    assert re.search(r"celery.*(Warm shutdown|worker: Warm)", log, re.IGNORECASE | re.DOTALL)
