"""Cost simulator speed: one feature over 30 days re-priced on the whole price book.

    DATABASE_URL=postgres://… python -m bench.simulator --events 1000000

Seeds `--org` with `seed_demo_usage` (`--fast` when it has no events) if it
has fewer events than asked, installs genai-prices' bundled price book (every
model, ~2,600 price rows) in the engine, then times
`analytics.simulator.simulate` for the costliest feature over the last 30
days (budget ≤ 1 s), for the whole organization, and the "All features"
ranking; the baseline is the same feature's `spend_totals` (one
rollup aggregate) in the same run. `make bench` runs `run()`: the same on a
throwaway test database seeded with BENCH_EVENTS events.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta

from bench import Result

BUDGET_MS = 1000.0
BENCH_EVENTS = 5_000  # SQLite ingest here is ~60 events/s: keep `make bench` short


def _timed(fn, repeat: int) -> tuple[float, float]:
    """(p50, max) milliseconds of `fn()` over `repeat` runs after one warm-up."""
    fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def _install_prices() -> int:
    from pricing import engine
    from pricing.genai_import import flatten, genai_providers
    from pricing.snapshot import Snapshot

    providers, _ = genai_providers(online=False)
    data = flatten(providers)
    engine.snapshot_set(
        Snapshot(
            version="bench",
            providers=[{"slug": p.slug, "model_match": p.model_match} for p in data.providers],
            rows=data.rows,
        )
    )
    return len(engine.priced_entries())


def _seed(org_name: str, events: int, days: int, seed: int) -> None:
    from django.core.management import call_command

    from accounts.models import Organization
    from analytics.models import UsageEvent

    org = Organization.objects.filter(name=org_name).first()
    have = UsageEvent.objects.filter(organization=org).count() if org else 0
    if have < events:
        print(f"seeding {org_name!r}: {have:,} events present, {events:,} wanted")
        call_command(
            "seed_demo_usage",
            org=org_name,
            days=days,
            events=events,
            seed=seed,
            fast=have == 0,  # COPY + rollups in SQL on PostgreSQL
        )


def _cases(organization, repeat: int, only: str = "") -> list[tuple[str, float, float, str]]:
    from analytics import selectors
    from analytics.models import UsageEvent, UsageShapeRollup
    from analytics.params import UsageFilters
    from analytics.periods import period_preset
    from analytics.simulator import simulate, simulate_features

    period = period_preset(organization, "30d")
    (top,) = selectors.spend_breakdown(
        organization=organization, period=period, by="feature", limit=1
    )
    feature = top.key
    shapes = UsageShapeRollup.objects.filter(
        organization=organization,
        feature=feature,
        hour__gte=period.start_utc - timedelta(hours=1),
    ).count()
    events = UsageEvent.objects.filter(organization=organization).count()
    sim = simulate(organization=organization, period=period, scope="feature", value=feature)
    listed = len(sim.candidates + sim.no_benchmark_data + sim.below_quality + sim.cannot_fit)
    note = (
        f"{events:,} events; feature {feature!r}: {sim.calls:,} calls, {shapes:,} shape rows, "
        f"{listed:,} candidates priced"
    )

    def baseline():
        selectors.spend_totals(
            organization=organization, period=period, filters=UsageFilters(feature=feature)
        )

    cases = [
        ("baseline: spend_totals of the feature", baseline, ""),
        (
            "simulate one feature, 30 days, whole price book",
            lambda: simulate(
                organization=organization, period=period, scope="feature", value=feature
            ),
            note,
        ),
        (
            "simulate the whole organization, 30 days",
            lambda: simulate(organization=organization, period=period),
            "",
        ),
        (
            "All features ranking, 30 days",
            lambda: simulate_features(organization=organization, period=period),
            "",
        ),
    ]
    return [
        (name, *_timed(fn, repeat), text)
        for n, (name, fn, text) in enumerate(cases)
        if n == 0 or only in name  # the baseline always, in the same run
    ]


def run() -> list[Result]:
    """`make bench`: a throwaway test database seeded with BENCH_EVENTS events."""
    from django.test.utils import setup_databases, teardown_databases

    from accounts.models import Organization

    _install_prices()
    old = setup_databases(verbosity=0, interactive=False)
    try:
        _seed("Bench Sim", BENCH_EVENTS, 30, 1)
        organization = Organization.objects.get(name="Bench Sim")
        cases = _cases(organization, repeat=5)
    finally:
        teardown_databases(old, verbosity=0)
    baseline_us = cases[0][1] * 1000
    results = [Result(cases[0][0], baseline_us)]
    for name, p50, _, note in cases[1:]:
        limit = BUDGET_MS * 1000 if name.startswith("simulate one feature") else None
        results.append(Result(name, p50 * 1000, baseline_us, limit, note))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simulator", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--org", default="Bench Co")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--only", default="", help="time only cases whose name contains this")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from accounts.models import Organization

    settings.DEBUG = False
    entries = _install_prices()
    _seed(args.org, args.events, args.days, args.seed)
    organization = Organization.objects.get(name=args.org)
    cases = _cases(organization, args.repeat, args.only)
    print(f"\n{connection.vendor}, price book of {entries:,} models, {args.repeat} runs each\n")
    print("| case | p50 ms | max ms | budget |")
    print("|---|---:|---:|---|")
    over = False
    for name, p50, worst, note in cases:
        budget = ""
        if name.startswith("simulate one feature"):
            over = p50 > BUDGET_MS
            budget = f"≤ {BUDGET_MS:g} ms {'OVER' if over else 'ok'}"
        print(f"| {name} | {p50:.1f} | {worst:.1f} | {budget} |")
        if note:
            print(f"\n{note}\n")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
