"""Dashboard speed: every page and summary/daily/breakdown endpoint, p50/p95.

    DATABASE_URL=postgres://… python -m bench.dashboard --events 10000000

Seeds the organization with `seed_demo_usage` if it has fewer events than
asked (deterministic, idempotent; `--fast` when it has none), then times
each URL through Django's full stack (test Client: middleware, session auth,
templates; no network) and streams a full CSV export while tracing Python
memory. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import time
import tracemalloc
from urllib.parse import quote

BUDGET_MS = 150.0


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "1")  # laptop static storage; DEBUG is switched off below
    import django

    django.setup()
    from django.conf import settings

    settings.DEBUG = False  # no query log, no debug templates: production behaviour


def _percentile(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def _org_and_user(name: str):
    from django.contrib.auth import get_user_model

    from accounts.models import Membership, Organization, Role

    organization = Organization.objects.get(name=name)
    User = get_user_model()
    user, _ = User.objects.get_or_create(
        username="bench@aispendtrack.local", defaults={"email": "bench@aispendtrack.local"}
    )
    Membership.objects.get_or_create(
        user=user, organization=organization, defaults={"role": Role.OWNER}
    )
    return organization, user


def _targets(organization) -> list[tuple[str, str]]:
    from analytics import selectors
    from analytics.models import UsageEvent
    from analytics.periods import period_preset

    period = period_preset(organization, "30d")

    def top(by: str, order: str = "cost") -> str:
        rows = selectors.spend_breakdown(
            organization=organization, period=period, by=by, order=order, limit=1
        )
        return str(rows[0].key) if rows else ""

    customer = top("customer")
    feature = top("feature")
    model = top("model")
    by_calls = selectors.spend_breakdown(
        organization=organization, period=period, by="model", order="calls"
    )
    rare = str(by_calls[-1].key) if by_calls else model
    request_id = (
        UsageEvent.objects.filter(organization=organization)
        .order_by("-created_at")
        .values_list("request_id", flat=True)
        .first()
    )
    trace = (
        UsageEvent.objects.filter(organization=organization)
        .exclude(trace_id="")
        .order_by("-created_at")
        .values_list("trace_id", flat=True)
        .first()
    )
    filtered = _filtered_targets(organization, period, customer=customer, feature=feature)
    q = quote
    return [
        ("page: overview (30 days)", "/dashboard/"),
        ("page: overview (this month)", "/dashboard/?range=month"),
        ("page: requests log", "/requests/"),
        ("page: requests log, filtered by model", f"/requests/?model={q(model)}"),
        ("page: requests by cost", "/requests/?sort=-cost"),
        ("page: requests by model", "/requests/?sort=model"),
        ("page: requests by customer, descending", "/requests/?sort=-customer"),
        ("page: requests by status", "/requests/?sort=status"),
        ("page: requests by tokens", "/requests/?sort=-tokens"),
        ("page: requests by latency", "/requests/?sort=-latency"),
        ("page: requests, oldest first", "/requests/?sort=time"),
        ("page: models", "/models/"),
        ("page: customers by cost", "/customers/"),
        ("page: customers by name, page 3", "/customers/?sort=name&page=3"),
        ("page: customers search", "/customers/?q=acct_00"),
        ("page: customers by margin (issue 13)", "/customers/?sort=margin"),
        ("page: customers, unprofitable filter", "/customers/?profit=unprofitable"),
        ("page: customers by cost, ascending", "/customers/?sort=cost"),
        ("page: customers by calls", "/customers/?sort=-calls"),
        ("page: customers by avg cost", "/customers/?sort=-avg_cost"),
        ("page: customers by name, descending, page 3", "/customers/?sort=-name&page=3"),
        ("page: customers by change", "/customers/?sort=-change"),
        ("page: customers by revenue", "/customers/?sort=-revenue"),
        ("page: customers by margin, one feature", f"/customers/?sort=margin&feature={q(feature)}"),
        ("page: customers, thin filter", "/customers/?profit=thin"),
        ("page: features", "/features/"),
        ("page: features by change", "/features/?sort=-change"),
        ("page: matrix (customers × features)", "/matrix/"),
        ("page: matrix by one feature", f"/matrix/?sort=-feature:{q(feature or '(untagged)')}"),
        ("page: matrix by name, page 3", "/matrix/?sort=name&page=3"),
        ("page: matrix of one feature (customers)", f"/matrix/?feature={q(feature)}"),
        ("export: matrix CSV (30 days)", "/matrix/export.csv"),
        ("page: customer detail (top)", f"/customers/{q(customer)}/"),
        ("page: feature detail", f"/features/{q(feature or '(untagged)')}/"),
        ("page: model detail", f"/models/{q(model)}/"),
        ("page: model detail (least used model)", f"/models/{q(rare)}/"),
        ("page: traces", "/traces/?range=7d"),
        ("page: traces search by id prefix", f"/traces/?range=7d&q={q((trace or 'none')[:6])}"),
        ("page: traces of one customer", f"/traces/?range=7d&customer_id={q(customer)}"),
        ("page: traces by duration", "/traces/?range=7d&sort=-duration"),
        ("page: trace detail", f"/traces/{q(trace or 'none')}/"),
        ("page: request detail", f"/requests/{request_id}/"),
        ("api: costs/summary (month)", "/api/costs/summary"),
        ("api: costs/summary (30 days)", f"/api/costs/summary?start_date={period.start}"),
        ("api: costs/daily (30 days)", f"/api/costs/daily?start_date={period.start}"),
        (
            "api: costs/daily by model (30 days)",
            f"/api/costs/daily?group_by=model&start_date={period.start}",
        ),
        ("api: costs (records, 100)", "/api/costs?limit=100"),
        ("api: costs (records, 1000)", "/api/costs?limit=1000"),
        ("api: customers", f"/api/customers?start_date={period.start}"),
        ("api: customers by margin", f"/api/customers?start_date={period.start}&sort=margin"),
        (
            "api: customers, unprofitable",
            f"/api/customers?start_date={period.start}&profit=unprofitable",
        ),
        ("api: customers by change", f"/api/customers?start_date={period.start}&sort=change"),
        ("api: customers by avg_cost", f"/api/customers?start_date={period.start}&sort=avg_cost"),
        (
            "api: customers by margin, one feature",
            f"/api/customers?start_date={period.start}&sort=margin&feature={q(feature)}",
        ),
        ("api: features", f"/api/features?start_date={period.start}"),
        ("api: by-model", f"/api/costs/by-model/{q(model)}"),
        ("api: by-customer", f"/api/costs/by-customer/{q(customer)}"),
        ("api: by-feature", f"/api/costs/by-feature/{q(feature or '(untagged)')}"),
        *filtered,
    ]


def _rare_bound(organization, column: str, share: int = 1000) -> str:
    """The value of `column` above which 1/share of the organization's calls lie
    (a walk down ue_org_cost / ue_org_latency): a selective range filter."""
    from analytics.models import UsageEvent

    calls = UsageEvent.objects.filter(organization=organization)
    rank = max(calls.count() // share, 1)
    value = calls.order_by(f"-{column}").values_list(column, flat=True)[rank - 1 : rank].first()
    return str(value or 0)


def _filtered_targets(organization, period, *, customer: str, feature: str) -> list:
    """The filter bar's pages (issue 12): rollup-answered filters, then those read
    from the events (a broad property, the costliest and slowest 0.1 % of calls)."""
    q = quote
    cost = _rare_bound(organization, "cost")
    latency = _rare_bound(organization, "latency_ms")
    broad = "property=plan%3Aenterprise"
    start = f"start_date={period.start}"
    return [
        ("filter (rollups): overview, customer", f"/dashboard/?customer_id={q(customer)}"),
        ("filter (rollups): overview, status", "/dashboard/?status=upstream_error"),
        ("filter (rollups): customers, feature", f"/customers/?feature={q(feature)}"),
        ("filter (rollups): features, environment", "/features/?environment=production"),
        ("filter (rollups): requests, status", "/requests/?status=rate_limited"),
        ("filter (events): overview, cost ≥ top 0.1 %", f"/dashboard/?cost_min={cost}"),
        ("filter (events): overview, latency ≥ top 0.1 %", f"/dashboard/?latency_min={latency}"),
        ("filter (events): requests, cost ≥ top 0.1 %", f"/requests/?cost_min={cost}"),
        ("filter (events): requests, latency ≥ top 0.1 %", f"/requests/?latency_min={latency}"),
        ("filter (events): requests, property (broad)", f"/requests/?{broad}"),
        ("filter (events): customers, cost ≥ top 0.1 %", f"/customers/?cost_min={cost}"),
        ("filter (events): traces, latency ≥ top 0.1 %", f"/traces/?latency_min={latency}"),
        (
            "filter (events): customer detail, property",
            f"/customers/{q(customer)}/?{broad}",
        ),
        ("filter (events): overview, property (broad)", f"/dashboard/?{broad}"),
        ("filter (events): customers, property (broad)", f"/customers/?{broad}"),
        (
            "filter (events): api summary, cost ≥ top 0.1 %",
            f"/api/costs/summary?{start}&cost_min={cost}",
        ),
        ("filter (events): api summary, property (broad)", f"/api/costs/summary?{start}&{broad}"),
        (
            "filter (events): api records, latency ≥ top 0.1 %",
            f"/api/costs?limit=100&latency_min={latency}",
        ),
    ]


REVENUE_SHARE = 0.3  # customers with revenue, as the margin targets assume


def _seed_revenue(organization, period) -> int:
    """Revenue for every third customer of the period's ranking (30 %), 0.5–3×
    its cost over the period, so some are unprofitable; deterministic, added
    once (the margin targets read it). Returns the entries added."""
    from decimal import Decimal

    from analytics import selectors
    from analytics.models import RevenueEntry, RevenueSource

    if RevenueEntry.objects.filter(organization=organization).exists():
        return 0
    rows = selectors.spend_breakdown(organization=organization, period=period, by="customer")
    entries = [
        RevenueEntry(
            organization=organization,
            customer_id=row.key,
            amount=(row.cost * Decimal(50 + (i * 37) % 251) / 100).quantize(Decimal("0.01")),
            period_start=period.start,
            period_end=period.end,
            source=RevenueSource.API,
            external_id=f"bench-{row.key}",
        )
        for i, row in enumerate(rows)
        if row.key and i % round(1 / REVENUE_SHARE) == 0
    ]
    RevenueEntry.objects.bulk_create(entries, batch_size=1000)
    return len(entries)


def _time_urls(client, targets, repeat: int) -> list[tuple[str, float, float, int]]:
    results = []
    for name, url in targets:
        for _ in range(2):  # warm caches (plan, template, connection)
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
        results.append((name, _percentile(samples, 50), _percentile(samples, 95), repeat))
        print(
            f"  {name:<42} p50 {results[-1][1]:7.1f} ms  p95 {results[-1][2]:7.1f} ms", flush=True
        )
    return results


def _export(client, limit_rows: int | None) -> dict[str, float]:
    tracemalloc.start()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    response = client.get("/api/costs/export?format=csv")
    rows = size = 0
    early_peak = None
    for chunk in response.streaming_content:
        rows += chunk.count(b"\n")
        size += len(chunk)
        if early_peak is None and rows >= 100_000:
            # flat memory: the peak over the first 100k rows vs over all of them
            early_peak = tracemalloc.get_traced_memory()[1]
        if limit_rows and rows >= limit_rows:
            break
    response.close()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "rows": rows - 1,
        "mb": size / 1e6,
        "seconds": seconds,
        "peak_traced_mb": peak / 1e6,
        "early_peak_traced_mb": (early_peak or peak) / 1e6,
        "rss_growth_mb": (rss_after - rss_before) / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--org", default="Bench Co")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="time only targets whose name contains this (repeat for several)",
    )
    parser.add_argument("--no-export", action="store_true")
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="leave startup objects to the collector (served workers freeze them: proxy.asgi)",
    )
    parser.add_argument(
        "--export-rows",
        type=int,
        default=1_000_000,
        help="stop reading the CSV export after N rows",
    )
    args = parser.parse_args(argv)
    _setup()
    if not args.no_gc_freeze:
        # As a served worker does since proxy.asgi's startup freeze: without
        # it, a full collection walks ~146k Django objects (~360 ms here) in
        # whichever request triggers it, and rankings that allocate a lot (the
        # margin orders) draw that into their p95.
        gc.collect()
        gc.freeze()

    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from accounts.models import Organization
    from analytics.fold import daily_rollups_rebuild
    from analytics.intervals import daily_ready
    from analytics.models import (
        CustomerRollup,
        DailyCoarseRollup,
        HourlyCoarseRollup,
        HourlyRollup,
        UsageEvent,
    )
    from analytics.periods import period_preset

    if connection.vendor != "postgresql":
        print("warning: the budget is for PostgreSQL; DATABASE_URL is not postgres://")
    org = Organization.objects.filter(name=args.org).first()
    have = UsageEvent.objects.filter(organization=org).count() if org else 0
    if have < args.events:
        print(f"seeding {args.org!r}: {have:,} events present, {args.events:,} wanted")
        call_command(
            "seed_demo_usage",
            org=args.org,
            days=args.days,
            events=args.events,
            seed=args.seed,
            fast=have == 0,  # COPY + rollups in SQL on PostgreSQL (~10x the ledger path)
        )
        if connection.vendor == "postgresql":
            # Fresh tables have no statistics: without them the planner picks
            # bitmap scans that take seconds (seen at 1M events).
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
    organization, user = _org_and_user(args.org)
    if not daily_ready(organization):
        started = time.perf_counter()
        daily_rollups_rebuild(organization.pk)
        organization.refresh_from_db()
        print(f"daily rollups rebuilt in {time.perf_counter() - started:.1f} s")
    events = UsageEvent.objects.filter(organization=organization).count()
    rollups = HourlyRollup.objects.filter(organization=organization).count()
    sizes = ", ".join(
        f"{model.__name__} {model.objects.filter(organization=organization).count():,}"
        for model in (HourlyRollup, HourlyCoarseRollup, DailyCoarseRollup, CustomerRollup)
    )
    print(f"{organization.name}: {events:,} events; rows: {sizes}")
    added = _seed_revenue(organization, period_preset(organization, "30d"))
    if added:
        print(f"revenue added for {added:,} customers (the margin targets)")

    client = Client()
    client.force_login(user)
    targets = [
        (name, url)
        for name, url in _targets(organization)
        if not args.only or any(part in name for part in args.only)
    ]
    results = _time_urls(client, targets, args.repeat)

    print(
        f"\n{events:,} events ({rollups:,} rollup rows), {connection.vendor}, "
        f"{args.repeat} timed requests each after 2 warm-ups; budget p95 ≤ {BUDGET_MS:g} ms\n"
    )
    print("| page / endpoint | p50 ms | p95 ms | budget |")
    print("|---|---:|---:|---|")
    over = False
    for name, p50, p95, _ in results:
        if name.startswith("export:"):  # a download, not a page: reported, not budgeted
            print(f"| {name} | {p50:.1f} | {p95:.1f} | (download) |")
            continue
        over |= p95 > BUDGET_MS
        print(f"| {name} | {p50:.1f} | {p95:.1f} | {'ok' if p95 <= BUDGET_MS else 'OVER'} |")
    if not args.no_export:
        export = _export(client, args.export_rows)
        print(
            f"\nexport CSV: {export['rows']:,} rows, {export['mb']:.0f} MB in "
            f"{export['seconds']:.1f} s ({export['rows'] / export['seconds']:,.0f} rows/s); "
            f"peak traced Python memory {export['early_peak_traced_mb']:.1f} MB after "
            f"100,000 rows, {export['peak_traced_mb']:.1f} MB after all, "
            f"max RSS growth {export['rss_growth_mb']:.1f} MB"
        )
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
