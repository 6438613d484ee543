"""µs per plan-limit check (`PlanLimitGate.admit` + `observe`, what the proxy
adds per call with billing on), against a runtime with no gates measured in
the same run. No I/O happens in either: the gate has no Redis and grants
itself allowance; with Redis a call spends leased allowance by the same code
(proxy/plan_quota.py), and only a call that finds none waits for Redis."""

from __future__ import annotations

from types import SimpleNamespace

from bench import Result, measure
from billing.selectors import OrgLimits
from proxy.plan_limits import PlanLimitGate

LIMIT_US = 20.0
NUMBER = 50_000


def _gate(limits: OrgLimits) -> PlanLimitGate:
    gate = PlanLimitGate()
    gate.limits = {org: limits for org in range(1, 10_001)}  # 10,000 organizations
    gate.default = limits
    return gate


def run() -> list[Result]:
    call = SimpleNamespace(identity=SimpleNamespace(organization_id=4_321))
    record = SimpleNamespace(organization_id=4_321)
    gates: list = []

    def baseline() -> None:  # ProxyRuntime.admit with no gates registered
        for gate in gates:
            gate.admit(call)

    baseline_us = measure(baseline, number=NUMBER * 4)
    results = [Result("baseline: runtime.admit with no gates", baseline_us)]
    # Limits far above what the benchmark reaches: every call is admitted.
    cases = [
        ("Free-like (monthly + hourly limits)", OrgLimits("Free", 10**12, 10**12)),
        ("Pro-like (hourly limit only)", OrgLimits("Pro", None, 10**12)),
    ]
    for name, limits in cases:
        gate = _gate(limits)

        def check(gate=gate) -> None:
            gate.admit(call)
            gate.observe(record)

        us = measure(check, number=NUMBER)
        results.append(Result(f"admit + observe: {name}", us, baseline_us, LIMIT_US))
    refusing = _gate(OrgLimits("Free", None, 0))
    us = measure(lambda: refusing.admit(call), number=NUMBER)
    results.append(
        Result(
            "admit refusing (the Refusal is built once a second per org)", us, baseline_us, LIMIT_US
        )
    )
    return results
