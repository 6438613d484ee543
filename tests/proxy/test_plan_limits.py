"""Plan limits in the proxy, through the official SDKs (billing on).

The gate's clock is pinned so the windows' resets are hand-computable:
14:59:30 UTC on Nov 29 is 30 s before the next hour and 1 day 9 h 0 min 30 s
(118,830 s) before 00:00 UTC on Dec 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import anthropic
import httpx
import openai
import pytest
import redis.asyncio as aioredis
from django.test import override_settings

from accounts.models import Organization, Scope
from accounts.services import api_key_issue
from billing import windows
from billing.models import Plan, Subscription
from billing.selectors import OrgLimits
from proxy.gates import Refusal
from proxy.plan_limits import PlanLimitGate
from tests.factories import MembershipFactory, OrganizationFactory
from tests.proxy.conftest import ProxyServer, proxy_settings
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PINNED = datetime(2026, 11, 29, 14, 59, 30, tzinfo=UTC).timestamp()
UNTIL_NEXT_HOUR = 30
UNTIL_DEC_1 = 86_400 + 9 * 3600 + 30


def start_billing_proxy(fake_provider, spool_dir, django_db_blocker, **extra) -> ProxyServer:
    with (
        proxy_settings(fake_provider, spool_dir, AISPENDTRACK_BILLING=True, **extra),
        django_db_blocker.unblock(),
    ):
        return ProxyServer().start()


@pytest.fixture(scope="module")
def billing_proxy(django_db_setup, django_db_blocker, fake_provider, tmp_path_factory):
    server = start_billing_proxy(
        fake_provider, tmp_path_factory.mktemp("spool"), django_db_blocker, REDIS_URL=""
    )
    yield server
    with django_db_blocker.unblock():
        server.stop()


def plan_gate(server: ProxyServer) -> PlanLimitGate:
    [gate] = [g for g in server.runtime.gates if isinstance(g, PlanLimitGate)]
    return gate


def new_organization() -> Organization:
    return OrganizationFactory()  # type: ignore[return-value]


@pytest.fixture
def limited(billing_proxy, plans):
    """An organization on a custom plan, a proxy key, and the gate told about it."""

    def make(*, hourly: int | None = None, monthly: int | None = None, clock=lambda: PINNED):
        organization = new_organization()
        owner = MembershipFactory(organization=organization, role="owner").user
        plan = Plan.objects.create(
            slug=f"custom-{organization.pk}",
            name="Custom",
            hourly_request_limit=hourly,
            monthly_call_limit=monthly,
        )
        Subscription.objects.create(organization=organization, plan=plan)
        _, raw = api_key_issue(
            organization=organization, name="k", scopes=[Scope.PROXY], created_by=owner
        )
        gate = plan_gate(billing_proxy)
        gate.clock = clock
        billing_proxy.call(gate._load_limits())
        return raw

    yield make
    billing_proxy.flush()


def openai_client(server, raw, **kwargs) -> openai.OpenAI:
    kwargs.setdefault("max_retries", 0)
    return openai.OpenAI(
        base_url=f"{server.url}/v1",
        api_key="sk-provider",
        default_headers={"x-aispendtrack-key": raw},
        **kwargs,
    )


def chat(client: openai.OpenAI, **headers):
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], extra_headers=headers
    )


def test_hourly_limit_refuses_with_retry_after_and_default_retry(
    billing_proxy, limited, fake_provider
):
    client = openai_client(billing_proxy, limited(hourly=3))
    for _ in range(3):
        assert chat(client).status_code == 200
    forwarded = len(fake_provider.received)

    with pytest.raises(openai.RateLimitError) as refused:
        chat(client)

    response = refused.value.response
    assert refused.value.code == "plan_limit_exceeded"
    message = refused.value.body["message"]
    assert "3 proxy requests per hour" in message and "Settings → Billing" in message
    assert response.headers["retry-after"] == str(UNTIL_NEXT_HOUR)
    assert "x-should-retry" not in response.headers  # the SDK's default retry applies
    assert response.headers["x-aispendtrack-limit"] == "3"
    assert response.headers["x-aispendtrack-remaining"] == "0"
    assert response.headers["x-aispendtrack-reset"] == "2026-11-29T15:00:00Z"
    assert len(fake_provider.received) == forwarded  # never forwarded


def test_hourly_window_resets_at_the_hour(billing_proxy, limited):
    now = [PINNED]
    client = openai_client(billing_proxy, limited(hourly=1, clock=lambda: now[0]))
    assert chat(client).status_code == 200
    with pytest.raises(openai.RateLimitError):
        chat(client)
    now[0] = PINNED + UNTIL_NEXT_HOUR  # 15:00:00: a new hour
    assert chat(client).status_code == 200


def test_monthly_limit_says_do_not_retry_and_the_sdk_obeys(billing_proxy, limited):
    raw = limited(monthly=2)
    for _ in range(2):
        assert chat(openai_client(billing_proxy, raw)).status_code == 200
    billing_proxy.flush()

    attempts = []
    http_client = httpx.Client(event_hooks={"request": [attempts.append]})
    client = openai_client(billing_proxy, raw, max_retries=2, http_client=http_client)
    with pytest.raises(openai.RateLimitError) as refused:
        chat(client)

    assert len(attempts) == 1  # x-should-retry: false, so no retry
    headers = refused.value.response.headers
    assert headers["x-should-retry"] == "false"
    assert headers["retry-after"] == str(UNTIL_DEC_1)
    assert headers["x-aispendtrack-reset"] == "2026-12-01T00:00:00Z"
    assert headers["x-aispendtrack-limit"] == "2"
    assert refused.value.code == "plan_limit_exceeded"
    assert "2 tracked calls per calendar month" in refused.value.body["message"]
    assert "Dec 1 at 00:00 UTC" in refused.value.body["message"]


def test_monthly_count_starts_from_the_ledger(billing_proxy, limited):
    """A worker that starts mid-month counts the calls the ledger already holds."""
    raw = limited(monthly=5)
    for _ in range(5):
        assert chat(openai_client(billing_proxy, raw)).status_code == 200
    billing_proxy.flush()
    gate = plan_gate(billing_proxy)
    gate.monthly.clear()  # forget this worker's own count, as a fresh worker would
    billing_proxy.call(gate._load_db_counts())
    with pytest.raises(openai.RateLimitError):
        chat(openai_client(billing_proxy, raw))


def test_refusal_in_anthropic_shape(billing_proxy, limited):
    raw = limited(hourly=0)
    client = anthropic.Anthropic(
        base_url=billing_proxy.url,
        api_key="sk-ant",
        max_retries=0,
        default_headers={"x-aispendtrack-key": raw},
    )
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(
            model="claude-3-5-haiku-latest",
            max_tokens=5,
            messages=[{"role": "user", "content": "Hi"}],
        )
    assert refused.value.body["type"] == "error"
    assert "proxy requests per hour" in refused.value.body["error"]["message"]
    assert refused.value.response.headers["retry-after"] == str(UNTIL_NEXT_HOUR)


def test_provider_rate_limit_headers_pass_untouched(billing_proxy, limited):
    client = openai_client(billing_proxy, limited(hourly=10))
    response = chat(client, **{"x-fake-ratelimit": "1"})
    assert response.headers["x-ratelimit-limit-requests"] == "500"
    assert response.headers["x-ratelimit-remaining-requests"] == "499"
    assert "x-aispendtrack-limit" not in response.headers


def test_a_plan_change_reaches_the_gate_by_an_incremental_reload(billing_proxy, limited):
    client = openai_client(billing_proxy, limited(hourly=1))
    assert chat(client).status_code == 200
    with pytest.raises(openai.RateLimitError):
        chat(client)
    gate = plan_gate(billing_proxy)
    [subscription] = Subscription.objects.filter(plan__slug__startswith="custom-").order_by("-pk")[
        :1
    ]
    subscription.plan = Plan.objects.get(slug="pro")
    subscription.save()  # as the webhook or admin does
    billing_proxy.call(gate._load_limits(full=False))
    assert gate.limits[subscription.organization_id].hourly_requests == 10_000
    assert chat(client).status_code == 200


def test_another_organization_is_not_counted(billing_proxy, limited):
    first = openai_client(billing_proxy, limited(hourly=1))
    second = openai_client(billing_proxy, limited(hourly=1))
    assert chat(first).status_code == 200
    assert chat(second).status_code == 200
    with pytest.raises(openai.RateLimitError):
        chat(first)


@contextlib.contextmanager
def workers_sharing_redis(
    count: int, fake_provider, tmp_path_factory, django_db_blocker, *, hourly: int
) -> Iterator[tuple[list[ProxyServer], str]]:
    """`count` proxy workers (each its own gate) sharing one Redis of their own,
    and a proxy key of an organization whose plan allows `hourly` requests an hour."""
    redis_server = RedisServer().start()
    servers: list[ProxyServer] = []
    try:
        for _ in range(count):
            servers.append(
                start_billing_proxy(
                    fake_provider,
                    tmp_path_factory.mktemp("spool"),
                    django_db_blocker,
                    REDIS_URL=redis_server.url,
                )
            )
        organization = new_organization()
        owner = MembershipFactory(organization=organization, role="owner").user
        plan = Plan.objects.create(
            slug=f"shared-{organization.pk}", name="Shared", hourly_request_limit=hourly
        )
        Subscription.objects.create(organization=organization, plan=plan)
        _, raw = api_key_issue(
            organization=organization, name="k", scopes=[Scope.PROXY], created_by=owner
        )
        for server in servers:
            server.call(plan_gate(server)._load_limits())
        yield servers, raw
    finally:
        with django_db_blocker.unblock():
            for server in servers:
                server.flush()
                server.stop()
        redis_server.stop()


def test_exact_across_two_workers_sharing_redis(
    fake_provider, tmp_path_factory, django_db_blocker, plans
):
    """Two proxy workers (each its own gate) share one Redis: together they
    admit exactly the limit, counted from the SDK's answers."""
    with workers_sharing_redis(
        2, fake_provider, tmp_path_factory, django_db_blocker, hourly=40
    ) as (servers, raw):
        statuses: list[int] = []
        lock = threading.Lock()

        def hammer(server):
            client = openai_client(server, raw)
            for _ in range(40):
                try:
                    status = chat(client).status_code
                except openai.RateLimitError:
                    status = 429
                with lock:
                    statuses.append(status)

        threads = [threading.Thread(target=hammer, args=(s,)) for s in servers for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(statuses) == 160
        assert statuses.count(200) == 40
        assert statuses.count(429) == 120


def test_exact_across_three_workers_under_many_concurrent_calls(
    fake_provider, tmp_path_factory, django_db_blocker, plans
):
    """Three workers, 16 calls in flight on each (one event loop, raw HTTP, as
    fast as the proxies answer), 600 calls against an hourly limit of 60: the
    workers admit exactly 60, and exactly 60 reach the provider."""
    limit, per_worker, calls = 60, 16, 600
    run = uuid.uuid4().hex
    with workers_sharing_redis(
        3, fake_provider, tmp_path_factory, django_db_blocker, hourly=limit
    ) as (servers, raw):
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
        headers = {
            "authorization": "Bearer sk-provider",
            "x-aispendtrack-key": raw,
            "x-plan-run": run,  # forwarded untouched: the provider's count of this test's calls
        }
        remaining = [calls]

        async def worker(client: httpx.AsyncClient, url: str, statuses: list[int]) -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                response = await client.post(url, json=body, headers=headers)
                statuses.append(response.status_code)

        async def hammer() -> list[int]:
            statuses: list[int] = []
            limits = httpx.Limits(max_connections=per_worker * len(servers))
            async with httpx.AsyncClient(limits=limits, timeout=30) as client:
                await asyncio.gather(
                    *(
                        worker(client, f"{server.url}/v1/chat/completions", statuses)
                        for server in servers
                        for _ in range(per_worker)
                    )
                )
            return statuses

        statuses = asyncio.run(hammer())
        assert len(statuses) == calls
        forwarded = sum(1 for r in fake_provider.received if r.header("x-plan-run") == run)
        assert (statuses.count(200), forwarded) == (limit, limit)
        assert statuses.count(429) == calls - limit


@override_settings(AISPENDTRACK_BILLING=False)
def test_billing_off_registers_no_plan_gate(proxy):
    assert not any(isinstance(g, PlanLimitGate) for g in proxy.runtime.gates)


class _Identity:
    organization_id = 7


class _Call:
    identity = _Identity()


class _TableGate(PlanLimitGate):
    """The gate with a fixed limits table instead of the database's
    (organization 7: `table` or an hourly limit of 3)."""

    table = OrgLimits("Free", None, 3)

    async def _load_limits(self, *, full: bool = True) -> None:
        self.limits = {7: self.table}

    async def _load_db_counts(self) -> None:
        self.db_month = {}


async def _until(predicate, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def _until_async(read, expected, within: float = 10.0) -> None:
    """Until `await read()` answers `expected` (a Redis value the gate pushes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (value := await read()) != expected:
        assert loop.time() < deadline, f"{value!r}, not {expected!r}"
        await asyncio.sleep(0.01)


async def _decide(gate: PlanLimitGate, call) -> Refusal | None:
    """The gate's verdict, awaited when it must ask Redis first."""
    verdict = gate.admit(call)
    if verdict is not None and not isinstance(verdict, Refusal):
        verdict = await verdict
    return verdict


def test_redis_unreachable_fails_open_then_limits_resume(caplog):
    """Redis dies: calls pass and one warning is logged (not one per sync);
    Redis returns on the same port: the counts kept meanwhile are pushed and
    the limit applies again."""
    redis_server = RedisServer().start()
    gate = _TableGate(redis_url=redis_server.url, clock=lambda: PINNED)
    call = _Call()
    pinned = datetime.fromtimestamp(PINNED, UTC)
    admitted_key = windows.hour_counter_key(7, pinned)

    async def scenario():
        await gate.start()
        shared = aioredis.Redis.from_url(redis_server.url)
        try:
            assert [await _decide(gate, call) for _ in range(3)] == [None] * 3
            assert await _decide(gate, call) is not None
            await _until_async(lambda: shared.get(admitted_key), b"3")  # pushed to Redis

            redis_server.stop()
            await _until(lambda: gate.redis_down)
            assert [await _decide(gate, call) for _ in range(5)] == [None] * 5  # fail open
            await asyncio.sleep(0.5)  # several failed syncs: still one warning

            redis_server.start()  # same port, empty
            await shared.aclose()  # its connection died with the server
            shared = aioredis.Redis.from_url(redis_server.url)
            await _until(lambda: not gate.redis_down)
            # The 5 calls admitted during the outage were pushed once Redis returned.
            await _until_async(lambda: shared.get(admitted_key), b"5")
            refusal = await _decide(gate, call)
            assert refusal is not None and refusal.code == "plan_limit_exceeded"
        finally:
            await shared.aclose()
            await gate.stop()

    with caplog.at_level(logging.WARNING, logger="aispendtrack.plan_limits"):
        try:
            asyncio.run(scenario())
        finally:
            redis_server.stop()
    unreachable = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(unreachable) == 1
    assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_a_call_another_gate_refuses_uses_no_monthly_call():
    """A budget's refusal after the plan gate admitted: the month's
    reservation is given back, so the plan's 2 calls are all still there."""
    gate = _TableGate(clock=lambda: PINNED)
    gate.table = OrgLimits("Free", 2, None)
    call = _Call()

    async def scenario():
        await gate.start()
        try:
            for _ in range(5):
                assert await _decide(gate, call) is None
                gate.withdraw(call)
            assert [await _decide(gate, call) for _ in range(2)] == [None, None]
            refusal = await _decide(gate, call)
            assert refusal is not None and "2 tracked calls per calendar month" in refusal.message
        finally:
            await gate.stop()

    asyncio.run(scenario())


def test_allowance_left_idle_near_the_limit_goes_back_to_busy_workers():
    """Worker A leases a chunk, admits one call and goes quiet; worker B
    admits until refused. Once A gives its idle allowance back, B admits the
    rest: together exactly the limit of 10, nothing lost in A's hands."""
    redis_server = RedisServer().start()
    gates = [_TableGate(redis_url=redis_server.url, clock=lambda: PINNED) for _ in range(2)]
    for gate in gates:
        gate.table = OrgLimits("Free", None, 10)
    a, b = gates
    call = _Call()

    async def scenario() -> list[Refusal | None]:
        for gate in gates:
            await gate.start()
        try:
            verdicts = [await _decide(a, call)]
            while (verdict := await _decide(b, call)) is None:
                verdicts.append(verdict)
            assert len(verdicts) < 10, "A held nothing back: the test proves nothing"
            await _until(lambda: a.hourly[7].allowance == 0)  # given back after 1 s idle
            await _until(lambda: not b.hourly[7].exhausted)  # B's sync saw it
            while (verdict := await _decide(b, call)) is None:
                verdicts.append(verdict)
            return verdicts
        finally:
            for gate in gates:
                await gate.stop()

    try:
        assert len(asyncio.run(scenario())) == 10
    finally:
        redis_server.stop()
