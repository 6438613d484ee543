"""Query plans of the filters no rollup answers (issue 12), on PostgreSQL.

    DATABASE_URL=postgres://… python -m bench.filter_plans [--org "Bench Co"]

Runs EXPLAIN (ANALYZE, BUFFERS) on the statements a filtered page issues for
properties and cost/latency ranges (period totals and the first records
page, last 30 days) on an organization seeded by `bench.dashboard`, and
prints each plan's index use and execution time, with the unfiltered
rollup total of the same period as the baseline.
"""

from __future__ import annotations

import argparse
import re
import sys
from decimal import Decimal

from bench.dashboard import _org_and_user, _rare_bound, _setup


def _summary(plan: str) -> tuple[str, float]:
    """The plan's scans ("Index Scan ue_org_cost", "Bitmap Index Scan ue_properties",
    "Seq Scan") and its execution time."""
    scans = set()
    for kind, using, target in re.findall(
        r"((?:Parallel )?(?:Index Only Scan|Index Scan|Bitmap Index Scan|Seq Scan))"
        r"(?: Backward)?(?: using (\w+))? on (\w+)",
        plan,
    ):
        index = using or (target if "Bitmap" in kind else "")
        scans.add(f"{kind} {index}".strip())
    found = re.search(r"Execution Time: ([\d.]+) ms", plan)
    assert found, plan
    return ", ".join(sorted(scans)), float(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.filter_plans", description=__doc__)
    parser.add_argument("--org", default="Bench Co")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    _setup()
    from django.db import connection

    from analytics.models import UsageEvent
    from analytics.params import UsageFilters
    from analytics.periods import period_preset
    from analytics.selectors._common import event_rows, events_in, rollup_rows

    if connection.vendor != "postgresql":
        print("needs PostgreSQL (DATABASE_URL=postgres://…)")
        return 2
    organization, _ = _org_and_user(args.org)
    period = period_preset(organization, "30d")
    cost = _rare_bound(organization, "cost")
    latency = _rare_bound(organization, "latency_ms")
    model = (
        events_in(organization=organization, period=period).values_list("model", flat=True).first()
    )
    customer = (
        events_in(organization=organization, period=period)
        .exclude(customer_id="")
        .values_list("customer_id", flat=True)
        .first()
    )
    cases = {
        "no filter (rollups: the baseline)": UsageFilters(),
        "property plan:enterprise (broad)": UsageFilters(properties=(("plan", "enterprise"),)),
        "property plan:enterprise + model": UsageFilters(
            properties=(("plan", "enterprise"),), model=model
        ),
        f"cost ≥ {cost} (top 0.1 %)": UsageFilters(cost_min=Decimal(cost)),
        f"latency ≥ {latency} ms (top 0.1 %)": UsageFilters(latency_min=int(latency)),
        "one customer + property": UsageFilters(
            customer_id=customer, properties=(("plan", "enterprise"),)
        ),
        "cost 0.001–0.002 USD (a middle band)": UsageFilters(
            cost_min=Decimal("0.001"), cost_max=Decimal("0.002")
        ),
    }
    print(f"{organization.name}: period {period.start} – {period.end}\n")
    print("| filter | statement | plan (indexes) | median ms |")
    print("|---|---|---|---:|")
    for name, filters in cases.items():
        rows = rollup_rows(organization=organization, period=period, filters=filters)
        totals = rows.qs.values("organization").annotate(**rows.annotations())
        records = events_in(organization=organization, period=period, filters=filters)
        first_page = records.order_by("-created_at", "-pk")[:51]
        statements = [("period totals", totals), ("records, first page", first_page)]
        if filters.needs_events and rows.qs.model is not UsageEvent:
            # A filter the property rollups answer: the events path it replaced, same run.
            events = event_rows(organization=organization, period=period, filters=filters)
            before = events.qs.values("organization").annotate(**events.annotations())
            statements.insert(1, ("period totals, events path (before)", before))
        for statement, qs in statements:
            runs = [_summary(qs.explain(analyze=True, buffers=True)) for _ in range(args.repeat)]
            used = runs[0][0]
            millis = sorted(ms for _, ms in runs)[len(runs) // 2]
            print(f"| {name} | {statement} | {used} | {millis:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
