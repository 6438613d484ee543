"""The overview's headline: the chosen period against the equal period before it.

Spend, calls and errors come from the rollups (spend_summary). Latency
percentiles cannot be summed into a rollup, so they are read from the events:
the period's most recent LATENCY_SAMPLE calls, an index range scan on
ue_org_created (organization, -created_at) that stops after that many rows
whatever the period's size. Above that many calls the percentiles describe the
latest calls of the period, and the page says so.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection, transaction

from analytics.models import UsageEvent
from analytics.params import UsageFilters
from analytics.periods import Period
from analytics.selectors._common import Totals, change_ratio, event_source
from analytics.selectors.spend import spend_summary, spend_totals

LATENCY_SAMPLE = 20_000
# A property carried by at least 1/WALK_SHARE of the period's calls is
# sampled by walking the period's latest calls (ue_org_created: at most
# LATENCY_SAMPLE × WALK_SHARE rows) rather than through ue_properties, whose
# bitmap holds the property's calls of all time: PostgreSQL picks that bitmap
# for a period with few calls (10M events, a property on a quarter of them:
# 370 ms instead of ~40).
WALK_SHARE = 10


@dataclass(slots=True)
class Latency:
    p50_ms: int | None  # None: no calls
    p95_ms: int | None
    sampled: int  # how many calls the percentiles were taken over
    calls: int  # calls in the period (sampled < calls: the latest `sampled` only)

    @property
    def partial(self) -> bool:
        return self.sampled < self.calls


def nearest_rank(values: list[int], percentile: int) -> int | None:
    """The nearest-rank percentile of `values` (sorted ascending): the smallest
    value with at least `percentile` % of the values at or below it."""
    if not values:
        return None
    return values[max(1, math.ceil(percentile * len(values) / 100)) - 1]


def latency_percentiles(
    *,
    organization,
    period: Period,
    calls: int,
    filters: UsageFilters | None = None,
    sample: int = LATENCY_SAMPLE,
) -> Latency:
    """p50/p95 of call latency (ms) over the period's latest `sample` calls.

    `calls` is the period's call count (from the rollups), only to tell whether
    the sample is the whole period."""
    # the page's copy of the matching events, if it made one
    qs = event_source(organization=organization, period=period, filters=filters)
    latest = qs.order_by("-created_at").values_list("latency_ms", flat=True)[:sample]
    if connection.vendor == "postgresql":
        copied = qs.model is not UsageEvent
        walk = not copied and _walk(
            organization=organization, period=period, filters=filters, calls=calls
        )
        sampled, p50, p95 = _percentiles_sql(latest, walk=walk)
    else:
        values = sorted(latest)
        sampled, p50, p95 = len(values), nearest_rank(values, 50), nearest_rank(values, 95)
    return Latency(p50_ms=p50, p95_ms=p95, sampled=sampled, calls=max(calls, sampled))


def _walk(*, organization, period: Period, filters: UsageFilters | None, calls: int) -> bool:
    """Is the filter a property common enough (WALK_SHARE) that the sample
    must be read by walking the period's latest calls? (PostgreSQL's
    estimate of the property's share is right, but it prices the bitmap of
    all its calls too low when the period has few calls.)"""
    if filters is None or not filters.properties or connection.vendor != "postgresql":
        return False
    return calls * WALK_SHARE >= spend_totals(organization=organization, period=period).calls


def _percentiles_sql(latest, *, walk: bool = False) -> tuple[int, int | None, int | None]:
    """`nearest_rank` of the sample's p50 and p95 in the database: the rank
    ceil(p × n / 100) in integer arithmetic (no float fraction, as
    percentile_disc would take), so the page gets two numbers instead of
    decoding 20,000 rows in Python (~10 ms a period)."""
    sql, params = latest.query.sql_with_params()
    rank = "GREATEST(1, ({p} * COUNT(*) + 99) / 100)::int"
    # SET LOCAL lasts until the end of its transaction: one of its own.
    scope = transaction.atomic() if walk else contextlib.nullcontext()
    with scope, connection.cursor() as cursor:
        if walk:  # ue_properties (GIN) answers bitmap scans only
            cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(
            f"SELECT COUNT(*), (ARRAY_AGG(v ORDER BY v))[{rank.format(p=50)}], "  # noqa: S608
            f"(ARRAY_AGG(v ORDER BY v))[{rank.format(p=95)}] FROM ({sql}) AS sample(v)",
            params,
        )
        sampled, p50, p95 = cursor.fetchone()
    return sampled, p50, p95


def error_rate(totals: Totals) -> Decimal | None:
    """Share of calls that failed, 0..1 (None without calls)."""
    if not totals.calls:
        return None
    return (Decimal(totals.error_calls) / totals.calls).quantize(Decimal("0.0001"), ROUND_HALF_UP)


@dataclass(slots=True)
class Headline:
    period: Period
    previous_period: Period
    current: Totals
    previous: Totals
    latency: Latency
    previous_latency: Latency

    @property
    def cost_change(self) -> Decimal | None:
        return change_ratio(self.current.cost, self.previous.cost)

    @property
    def calls_change(self) -> Decimal | None:
        return change_ratio(Decimal(self.current.calls), Decimal(self.previous.calls))

    @property
    def error_rate(self) -> Decimal | None:
        return error_rate(self.current)

    @property
    def previous_error_rate(self) -> Decimal | None:
        return error_rate(self.previous)

    @property
    def p50_change(self) -> Decimal | None:
        return _ms_change(self.latency.p50_ms, self.previous_latency.p50_ms)

    @property
    def p95_change(self) -> Decimal | None:
        return _ms_change(self.latency.p95_ms, self.previous_latency.p95_ms)


def _ms_change(current: int | None, previous: int | None) -> Decimal | None:
    if current is None or previous is None:
        return None
    return change_ratio(Decimal(current), Decimal(previous))


def overview_headline(
    *, organization, period: Period, filters: UsageFilters | None = None
) -> Headline:
    """Spend, calls, error rate and p50/p95 latency of the period and of the
    equal-length period just before it (org-local days)."""
    summary = spend_summary(organization=organization, period=period, filters=filters)
    previous = period.previous()
    return Headline(
        period=period,
        previous_period=previous,
        current=summary.current,
        previous=summary.previous,
        latency=latency_percentiles(
            organization=organization, period=period, calls=summary.current.calls, filters=filters
        ),
        previous_latency=latency_percentiles(
            organization=organization,
            period=previous,
            calls=summary.previous.calls,
            filters=filters,
        ),
    )
