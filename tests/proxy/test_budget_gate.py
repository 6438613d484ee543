"""The budget gate in isolation: periods, rollover, sharing, reconciliation.

Expected spend comes from hand sums of the costs written, never from the gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.selectors import KeyIdentity
from alerts.models import Budget
from analytics.services import usage_record_batch as ingest
from proxy.budgets import BudgetGate, RedisStore, from_units
from proxy.headers import Tags
from tests.analytics.conftest import call

pytestmark = pytest.mark.django_db(transaction=True)


async def run_here(function, *args):
    return await asyncio.to_thread(function, *args)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, at: datetime) -> None:
        self.now = at.timestamp()


@dataclass
class FakeCall:
    identity: KeyIdentity
    tags: Tags = field(default_factory=Tags)


def a_call(org, *, customer_id: str = "", feature: str = "", key_id: int = 1) -> FakeCall:
    identity = KeyIdentity(key_id, "ask_x", org.pk, org.slug, frozenset({"proxy"}))
    return FakeCall(identity, Tags(customer_id=customer_id, feature=feature))


def budget(org, **fields) -> Budget:
    values = {
        "name": "Daily cap",
        "scope": "organization",
        "period": "day",
        "amount": Decimal("1.00"),
        "action": "block",
    }
    values.update(fields)
    return Budget.objects.create(organization=org, **values)


def gate_at(clock: Clock, **kwargs) -> BudgetGate:
    gate = BudgetGate(run_sync=run_here, clock=clock, **kwargs)
    asyncio.run(gate.reload())
    return gate


def test_cap_blocks_at_the_amount_and_a_new_day_unblocks_at_local_midnight(org):
    """New York, the day clocks spring forward (23 hours): the cap opens at
    local midnight, 04:00 UTC, not at UTC midnight."""
    org.timezone = "America/New_York"
    org.save()
    b = budget(org)
    clock = Clock(datetime(2026, 3, 8, 23, 0, tzinfo=UTC))  # 19:00 EDT on 8 March
    gate = gate_at(clock)
    gate.observe(call(org, clock_at(clock), cost="0.60"))
    assert gate.admit(a_call(org)) is None
    gate.observe(call(org, clock_at(clock), cost="0.40"))  # 0.60 + 0.40 = 1.00: reached

    refusal = gate.admit(a_call(org))
    assert refusal is not None and refusal.code == "budget_exceeded"
    assert refusal.reason == "budget" and refusal.should_retry is False
    # Period end: midnight EDT on 9 March = 04:00 UTC, 5 hours away.
    assert refusal.retry_after == 5 * 3600
    assert (
        '"Daily cap"' in refusal.message and "2026-03-09 00:00 America/New_York" in refusal.message
    )
    assert dict(refusal.headers)["x-aispendtrack-budget"] == str(b.pk)

    clock.set(datetime(2026, 3, 9, 3, 59, 59, tzinfo=UTC))
    assert gate.admit(a_call(org)) is not None
    clock.set(datetime(2026, 3, 9, 4, 0, tzinfo=UTC))
    assert gate.admit(a_call(org)) is None  # at once, and the counters are cleared
    [cap] = gate.caps.values()
    assert cap.spent == 0 and cap.pending == {}


def clock_at(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


def test_week_opens_on_monday_and_month_on_the_first(org):
    org.timezone = "Europe/Paris"
    org.save()
    budget(org, name="week", period="week", scope="feature", scope_value="f", amount=Decimal("0.5"))
    budget(
        org, name="month", period="month", scope="customer", scope_value="c", amount=Decimal("5")
    )
    # Sunday 29 March 2026, 21:00 UTC = 23:00 CEST (Paris moved to summer time that day).
    clock = Clock(datetime(2026, 3, 29, 21, 0, tzinfo=UTC))
    gate = gate_at(clock)
    gate.observe(call(org, clock_at(clock), cost="0.50", feature="f"))
    assert '"week"' in gate.admit(a_call(org, feature="f")).message
    clock.set(datetime(2026, 3, 29, 22, 0, tzinfo=UTC))  # Monday 00:00 CEST
    assert gate.admit(a_call(org, feature="f")) is None
    for _ in range(10):
        gate.observe(call(org, clock_at(clock), cost="0.50", customer_id="c"))
    assert '"month"' in gate.admit(a_call(org, customer_id="c")).message
    assert gate.admit(a_call(org, feature="f")) is None
    clock.set(datetime(2026, 3, 31, 21, 59, tzinfo=UTC))  # 31 March 23:59 CEST
    assert '"month"' in gate.admit(a_call(org, customer_id="c")).message
    clock.set(datetime(2026, 3, 31, 22, 0, tzinfo=UTC))  # 1 April 00:00 CEST
    assert gate.admit(a_call(org, customer_id="c")) is None


def test_only_the_budgets_scope_is_refused(org, other_org):
    budget(org, scope="customer", scope_value="acme-big", amount=Decimal("0.10"))
    clock = Clock(datetime.now(UTC))
    gate = gate_at(clock)
    gate.observe(call(org, clock_at(clock), cost="0.10", customer_id="acme-big"))
    gate.observe(call(org, clock_at(clock), cost="5.00", customer_id="small"))
    assert gate.admit(a_call(org, customer_id="acme-big")) is not None
    assert gate.admit(a_call(org, customer_id="small")) is None
    assert gate.admit(a_call(org)) is None
    assert gate.admit(a_call(other_org, customer_id="acme-big")) is None


def test_unpriced_calls_add_no_money(org):
    budget(org, amount=Decimal("0.01"))
    clock = Clock(datetime.now(UTC))
    gate = gate_at(clock)
    for _ in range(5):
        gate.observe(call(org, clock_at(clock), cost=None))
    assert gate.admit(a_call(org)) is None


def test_reconcile_takes_the_ledger_as_truth(org):
    """A counter that drifted (twice the real spend, the LiteLLM #36926 shape)
    is set back to the ledger's sum by the next reconcile."""
    budget(org, period="month", amount=Decimal("10.00"))
    now = datetime(2026, 5, 20, 12, 30, tzinfo=UTC)
    clock = Clock(now)
    costs = ["1.25", "2.50", "0.125"]
    ingest(
        [call(org, now - timedelta(days=n + 1), cost=c) for n, c in enumerate(costs)]
        + [call(org, datetime(2026, 4, 30, 23, tzinfo=UTC), cost="9.00")]  # last month
    )
    gate = gate_at(clock)
    asyncio.run(gate.reconcile(only_new=False))
    asyncio.run(gate.sync())
    [cap] = gate.caps.values()
    assert from_units(cap.spent) == Decimal("3.875")  # 1.25 + 2.50 + 0.125

    # Drift: the shared hash claims twice the spend.
    fields = gate.store.hashes[cap.key]
    fields["base"] *= 2
    asyncio.run(gate.sync())
    assert from_units(cap.spent) == Decimal("7.75")
    asyncio.run(gate.reconcile(only_new=False))
    asyncio.run(gate.sync())
    assert from_units(cap.spent) == Decimal("3.875")


def test_calls_observed_after_the_watermark_add_to_the_ledger_base(org):
    budget(org, period="day", amount=Decimal("1.00"))
    now = datetime(2026, 5, 20, 12, 30, tzinfo=UTC)
    clock = Clock(now)
    ingest([call(org, datetime(2026, 5, 20, 3, tzinfo=UTC), cost="0.70")])
    gate = gate_at(clock)
    asyncio.run(gate.reconcile(only_new=False))
    # A call in the current hour (after the watermark, 12:00): counted once.
    record = call(org, now, cost="0.20")
    gate.observe(record)
    ingest([record])
    asyncio.run(gate.sync())
    assert gate.admit(a_call(org)) is None
    [cap] = gate.caps.values()
    assert from_units(cap.spent) == Decimal("0.90")
    asyncio.run(gate.reconcile(only_new=False))  # still the 12:00 watermark: no double count
    asyncio.run(gate.sync())
    assert from_units(cap.spent) == Decimal("0.90")
    clock.set(now + timedelta(hours=1))  # 13:30: watermark 13:00, the call is now in the base
    asyncio.run(gate.reconcile(only_new=False))
    asyncio.run(gate.sync())
    assert from_units(cap.spent) == Decimal("0.90")


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (CI sets it)")
def test_without_hard_caps_the_sync_loop_waits_until_one_is_loaded(org):
    """An idle server with no hard cap does no sync round each 50 ms; a cap
    loaded by a reload is synced at the usual pace from its reconcile on."""
    budget(org)  # in the database, not yet loaded by the gate

    async def scenario() -> tuple[int, int]:
        gate = BudgetGate(run_sync=run_here, sync_seconds=0.01)
        rounds = 0
        real_sync = gate.sync

        async def counted() -> None:
            nonlocal rounds
            rounds += 1
            await real_sync()

        gate.sync = counted  # type: ignore[method-assign]
        task = asyncio.create_task(gate._sync_loop())
        await asyncio.sleep(0.3)
        without_caps = rounds
        await gate.reload()
        await gate.reconcile(only_new=True)  # what the ledger loop runs each second
        await asyncio.sleep(0.3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await gate.store.close()
        return without_caps, rounds - without_caps

    without_caps, with_a_cap = asyncio.run(scenario())
    assert without_caps == 0
    assert with_a_cap >= 5  # every 10 ms, give or take a loaded box


def test_two_workers_share_spend_through_redis(org):
    budget(org, amount=Decimal("1.00"))
    clock = Clock(datetime.now(UTC))

    async def scenario():
        one = BudgetGate(run_sync=run_here, clock=clock, redis_url=os.environ["REDIS_URL"])
        two = BudgetGate(run_sync=run_here, clock=clock, redis_url=os.environ["REDIS_URL"])
        assert isinstance(one.store, RedisStore)
        for gate in (one, two):
            await gate.reload()
            await gate.reconcile(only_new=False)
        one.observe(call(org, clock_at(clock), cost="0.60"))
        two.observe(call(org, clock_at(clock), cost="0.40"))
        assert one.admit(a_call(org)) is None and two.admit(a_call(org)) is None
        await one.sync()
        await two.sync()
        await one.sync()
        refused = (one.admit(a_call(org)), two.admit(a_call(org)))
        for gate in (one, two):
            await gate.store.redis.delete(next(iter(gate.caps.values())).key)
            await gate.store.close()
        return refused

    refused_one, refused_two = asyncio.run(scenario())
    assert refused_one is not None and refused_two is not None
