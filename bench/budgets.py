"""µs per budget check (`BudgetGate.admit`, and `observe` of a priced call),
with 100 hard-cap budgets in the caller's organization (and 1,000 other
organizations with budgets of their own), against a runtime with no gates
measured in the same run. No I/O in either: sharing and reconciling run in
the background."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

from alerts.selectors import CapSpec
from bench import Result, measure
from proxy.budgets import BudgetGate

LIMIT_US = 20.0
NUMBER = 50_000
ORG = 4_321


async def _never(*args):  # the gate never reaches the database here
    raise AssertionError("no I/O on the hot path")


def _spec(n: int, org: int, scope: str, value: str, amount: str = "1000000") -> CapSpec:
    return CapSpec(
        id=org * 1000 + n,
        organization_id=org,
        name=f"budget {n}",
        scope=scope,
        scope_value=value,
        period=("day", "week", "month")[n % 3],
        amount=Decimal(amount),
        timezone="America/New_York",
        updated_at=datetime.now(UTC),
    )


def _gate(own: list[CapSpec]) -> BudgetGate:
    gate = BudgetGate(run_sync=_never)
    others = [_spec(n, org, "organization", "") for org in range(1, 1001) for n in range(3)]
    gate.apply([*others, *own])
    return gate


def _mixed(amount: str = "1000000") -> list[CapSpec]:
    """100 budgets: 10 on the organization, 30 customers, 30 features, 20 keys, 10 envs."""
    out = [_spec(n, ORG, "organization", "", amount) for n in range(10)]
    out += [_spec(10 + n, ORG, "customer", f"cust-{n}", amount) for n in range(30)]
    out += [_spec(40 + n, ORG, "feature", f"feat-{n}", amount) for n in range(30)]
    out += [_spec(70 + n, ORG, "api_key", str(n), amount) for n in range(20)]
    out += [_spec(90 + n, ORG, "environment", f"env-{n}", amount) for n in range(10)]
    return out


def run() -> list[Result]:
    identity = SimpleNamespace(organization_id=ORG, key_id=7)
    tags = SimpleNamespace(customer_id="cust-3", feature="feat-5", environment="env-1")
    call = SimpleNamespace(identity=identity, tags=tags)
    record = SimpleNamespace(
        organization_id=ORG,
        customer_id="cust-3",
        feature="feat-5",
        environment="env-1",
        api_key_id=7,
        cost=Decimal("0.0012345678"),
        created_at=datetime.fromtimestamp(time.time(), UTC),
    )
    gates: list = []

    def baseline() -> None:  # ProxyRuntime.admit with no gates registered
        for gate in gates:
            gate.admit(call)

    baseline_us = measure(baseline, number=NUMBER * 4)
    results = [Result("baseline: runtime.admit with no gates", baseline_us)]

    mixed = _gate(_mixed())
    results.append(
        Result(
            "admit: 100 budgets, 14 match the call",
            measure(lambda: mixed.admit(call), number=NUMBER),
            baseline_us,
            LIMIT_US,
        )
    )
    every = _gate([_spec(n, ORG, "organization", "") for n in range(100)])
    results.append(
        Result(
            "admit: 100 organization budgets, all match",
            measure(lambda: every.admit(call), number=NUMBER),
            baseline_us,
            LIMIT_US,
        )
    )

    # After the call, off the latency path: 14 caps' counters move.
    results.append(
        Result(
            "observe a priced call matching 14 of 100 budgets",
            measure(lambda: mixed.observe(record), number=NUMBER),
            baseline_us,
            note="after the response, not part of the admission check's budget",
        )
    )
    closed = _gate(_mixed(amount="0.0000000001"))
    closed.observe(record)
    results.append(
        Result(
            "admit refusing (builds the 429's Refusal)",
            measure(lambda: closed.admit(call), number=NUMBER),
            baseline_us,
            LIMIT_US,
        )
    )
    return results
