"""Rollups in the organization's own days: DailyCoarseRollup and CustomerRollup.

Dashboards ask about local days ("the last 30 days" in Europe/Paris). The
hourly rollups answer any zone, but a month of a busy organization is
hundreds of thousands of hourly rows; these tables hold the same sums per
local day (and, per customer, per week and month too), so a period is a few
thousand rows whatever the call volume.

The rule that makes them exact: an hourly bucket belongs to the local date
its hour starts on in `Organization.rollup_timezone`, the same rule the
hourly selectors group by (`TruncDate("hour", zone)` and `hour >= local
midnight`). When the organization's zone changes the tables are rebuilt from
HourlyRollup (`daily_rollups_rebuild`); until then `rollup_timezone` differs
from the zone and the selectors read the hourly tables, so answers never mix
zones. The ledger writer reads `rollup_timezone` under a FOR KEY SHARE lock
and the rebuild holds FOR UPDATE, so no batch lands half in each zone.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction

from accounts.models import Organization
from analytics.models import (
    ROLLUP_COUNTERS,
    CustomerRollup,
    DailyCoarseRollup,
    DailyModelRollup,
    HourlyCoarseRollup,
    HourlyRollup,
    Span,
)
from analytics.periods import Period, org_zone

logger = logging.getLogger(__name__)

DAILY_COARSE_FIELDS = (
    "organization_id",
    "day",
    "provider",
    "model",
    "feature",
    "environment",
    "api_key_id",
    "status",
)
DAILY_MODEL_FIELDS = ("organization_id", "day", "provider", "model", "feature")
# The daily tables without a status column count error calls themselves.
DAILY_MODEL_COUNTERS = (*ROLLUP_COUNTERS, "error_calls")
CUSTOMER_SPAN_FIELDS = (
    "organization_id",
    "dimension",
    "value",
    "span",
    "start",
    "customer_id",
)
# CustomerRollup keeps no cache-write tokens.
CUSTOMER_COUNTERS = tuple(
    name for name in DAILY_MODEL_COUNTERS if not name.startswith("cache_write")
)
# The dimensions a customer is split by (besides its totals, dimension "").
CUSTOMER_DIMENSIONS = ("model", "feature")


def zone_named(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ValueError, KeyError):
        return ZoneInfo("UTC")


def rollup_zones(organization_ids: Iterable[int]) -> dict[int, ZoneInfo]:
    """The zone each organization's daily rollups are keyed in, locked FOR KEY
    SHARE (PostgreSQL) until the caller's transaction ends: a concurrent
    rebuild (FOR UPDATE) waits for this batch, or this batch for it."""
    ids = sorted(set(organization_ids))
    table = Organization._meta.db_table
    lock = " FOR KEY SHARE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, rollup_timezone FROM {table} WHERE id IN ({', '.join(['%s'] * len(ids))})"  # noqa: S608
            f" ORDER BY id{lock}",
            ids,
        )
        return {org_id: zone_named(name) for org_id, name in cursor.fetchall()}


def daily_ready(organization, period: Period | None = None) -> bool:
    """Do the daily tables answer in this period's zone (the org's zone by default)?"""
    zone = period.zone if period is not None else org_zone(organization)
    return organization.rollup_timezone == zone.key


# --- intervals ------------------------------------------------------------------


def spans_of(day: date) -> tuple[tuple[str, date], ...]:
    """The day, ISO week and month a local day is counted in."""
    return (
        (Span.DAY, day),
        (Span.WEEK, day - timedelta(days=day.weekday())),
        (Span.MONTH, day.replace(day=1)),
    )


def span_last_day(span: str, start: date) -> date:
    if span == Span.DAY:
        return start
    if span == Span.WEEK:
        return start + timedelta(days=6)
    following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def period_spans(period: Period, *, today: date) -> list[tuple[str, date]]:
    """Stored intervals that together hold exactly the period's days: whole
    months and ISO weeks where they fit, single days at the edges.

    An interval may run past the period's end when that end is today or later:
    no call has been recorded after today, so those days hold nothing.
    """
    horizon = period.end if period.end < today else date.max
    spans: list[tuple[str, date]] = []
    day = period.start
    while day <= period.end:
        for span in (Span.MONTH, Span.WEEK):
            start = dict(spans_of(day))[span]
            if start == day and span_last_day(span, start) <= horizon:
                spans.append((span, start))
                day = span_last_day(span, start) + timedelta(days=1)
                break
        else:
            spans.append((Span.DAY, day))
            day += timedelta(days=1)
    return spans


# --- writing --------------------------------------------------------------------


def _zeros(counters: tuple[str, ...]) -> dict[str, Any]:
    return {name: (Decimal(0) if name == "cost" else 0) for name in counters}


def sums_add(
    table: dict[tuple, dict[str, Any]],
    key: tuple,
    values: dict[str, Any],
    counters: tuple[str, ...],
    *,
    also: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Add `values`' counters into table[key]; a new row starts at zero, with
    the counters `also` (which the caller fills itself) at zero too."""
    into = table.get(key)
    if into is None:
        into = table[key] = _zeros((*counters, *also))
    for name in counters:
        into[name] += values[name]
    return into


# What the per-customer day sums take from an hourly bucket as is (error
# calls are counted from its status).
_CUSTOMER_SUMMED = tuple(name for name in CUSTOMER_COUNTERS if name != "error_calls")


def daily_sums(
    buckets: dict[tuple, dict[str, Any]], zones: dict[int, ZoneInfo]
) -> tuple[dict[tuple, dict[str, Any]], dict[tuple, dict[str, Any]]]:
    """HourlyRollup bucket sums (key in analytics.services.BUCKET_FIELDS order)
    folded into DailyCoarseRollup rows and per-customer day sums keyed
    (organization, day, customer, model, feature): `customer_spans_add` turns
    those into CustomerRollup rows."""
    local_days: dict[tuple[int, datetime], date] = {}
    coarse: dict[tuple, dict[str, Any]] = {}
    per_day: dict[tuple, dict[str, Any]] = {}  # (org, day, customer, model, feature)
    for key, values in buckets.items():
        org_id, hour, provider, model, customer_id, feature, environment, key_id, status = key
        day = local_days.get((org_id, hour))
        if day is None:
            day = local_days[(org_id, hour)] = hour.astimezone(zones[org_id]).date()
        sums_add(
            coarse,
            (org_id, day, provider, model, feature, environment, key_id, status),
            values,
            ROLLUP_COUNTERS,
        )
        into = sums_add(
            per_day,
            (org_id, day, customer_id, model, feature),
            values,
            _CUSTOMER_SUMMED,
            also=("error_calls",),
        )
        if status != "success":
            into["error_calls"] += values["calls"]
    return coarse, per_day


def model_sums(coarse: dict[tuple, dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """DailyCoarseRollup sums → DailyModelRollup rows (environment, key and status dropped)."""
    out: dict[tuple, dict[str, Any]] = {}
    for (org_id, day, provider, model, feature, _env, _key, status), values in coarse.items():
        key = (org_id, day, provider, model, feature)
        into = sums_add(out, key, values, ROLLUP_COUNTERS, also=("error_calls",))
        if status != "success":
            into["error_calls"] += values["calls"]
    return out


def customer_span_sums(per_day: dict[tuple, dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """(org, day, customer, model, feature) sums → CustomerRollup rows (the
    SQLite path; `_customer_spans_sql` does the same on PostgreSQL)."""
    out: dict[tuple, dict[str, Any]] = {}
    for (org_id, day, customer_id, model, feature), values in per_day.items():
        for span, start in spans_of(day):
            for dimension, value in (("", ""), ("model", model), ("feature", feature)):
                key = (org_id, dimension, value, span, start, customer_id)
                sums_add(out, key, values, CUSTOMER_COUNTERS)
    return out


def daily_rollups_add(
    buckets: dict[tuple, dict[str, Any]], *, zones: dict[int, ZoneInfo] | None = None
) -> None:
    """Add hourly bucket sums into the daily tables (inside the caller's
    transaction), keyed in each organization's `rollup_timezone`."""
    from analytics.services import rollup_rows_add

    if not buckets:
        return
    if zones is None:
        zones = rollup_zones(key[0] for key in buckets)
    coarse, per_day = daily_sums(buckets, zones)
    rollup_rows_add(DailyCoarseRollup, DAILY_COARSE_FIELDS, ROLLUP_COUNTERS, coarse)
    rollup_rows_add(DailyModelRollup, DAILY_MODEL_FIELDS, DAILY_MODEL_COUNTERS, model_sums(coarse))
    customer_spans_add(per_day)


def customer_spans_add(per_day: dict[tuple, dict[str, Any]]) -> None:
    """Add per-customer day sums to their day, week and month rows, as totals
    and split by model and by feature (9 rows each, before merging)."""
    from analytics.services import rollup_rows_add

    if not per_day:
        return
    if connection.vendor != "postgresql":
        rows = customer_span_sums(per_day)
        rollup_rows_add(CustomerRollup, CUSTOMER_SPAN_FIELDS, CUSTOMER_COUNTERS, rows)
        return
    # Expanding in SQL is ~10× cheaper than in Python; ORDER BY is the lock order.
    columns: list[list[Any]] = [[] for _ in range(5 + len(CUSTOMER_COUNTERS))]
    for key, values in per_day.items():
        for n, part in enumerate(key):
            columns[n].append(part)
        for n, name in enumerate(CUSTOMER_COUNTERS, start=5):
            columns[n].append(values[name])
    with connection.cursor() as cursor:
        cursor.execute(_customer_spans_sql(), columns)


@functools.cache
def _customer_spans_sql() -> str:
    types = ["bigint", "date", "text", "text", "text"] + [
        "numeric" if name == "cost" else "bigint" for name in CUSTOMER_COUNTERS
    ]
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    counters = ", ".join(CUSTOMER_COUNTERS)
    table = CustomerRollup._meta.db_table
    updates = ", ".join(f"{name} = {table}.{name} + EXCLUDED.{name}" for name in CUSTOMER_COUNTERS)
    return (
        _customer_spans_insert(f"unnest({arrays}) AS u(o, d, c, m, f, {counters})")
        + " ORDER BY o, dim, val, sp, st, c"
        + " ON CONFLICT (organization_id, dimension, value, span, start, customer_id)"
        + f" DO UPDATE SET {updates}"
    )


def _customer_spans_insert(source: str) -> str:
    """INSERT of CustomerRollup rows from `source`, a relation `u(o, d, c, m, f,
    <counters>)` of per-customer day sums: each row counts in its day, ISO week
    and month, as totals and under its model and its feature."""
    table = CustomerRollup._meta.db_table
    counters = ", ".join(CUSTOMER_COUNTERS)
    sums = ", ".join(f"SUM(u.{name})" for name in CUSTOMER_COUNTERS)
    keys = "o, dim, val, sp, st, c"
    return (
        f"INSERT INTO {table} (organization_id, dimension, value, span, start, customer_id, "  # noqa: S608
        f"{counters}) "
        f"SELECT {keys}, {sums} FROM {source} "
        f"CROSS JOIN LATERAL (VALUES ('{Span.DAY}', u.d), "
        f"('{Span.WEEK}', u.d - (EXTRACT(ISODOW FROM u.d)::int - 1)), "
        f"('{Span.MONTH}', date_trunc('month', u.d)::date)) AS s(sp, st) "
        f"CROSS JOIN LATERAL (VALUES ('', ''), ('model', u.m), ('feature', u.f)) AS x(dim, val) "
        f"GROUP BY {keys}"
    )


def _rebuild_sql(organization_id: int, zone: ZoneInfo) -> int:
    """`daily_rollups_rebuild` on PostgreSQL: two INSERT … SELECT … GROUP BY
    over the hourly tables (the hour's local date: `hour AT TIME ZONE zone`)."""
    day = "(hour AT TIME ZONE %s)::date"
    dims = "provider, model, feature, environment, api_key_id, status"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {DailyCoarseRollup._meta.db_table} "  # noqa: S608
            f"(organization_id, day, {dims}, {', '.join(ROLLUP_COUNTERS)}) "
            f"SELECT organization_id, {day}, {dims}, "
            f"{', '.join(f'SUM({name})' for name in ROLLUP_COUNTERS)} "
            f"FROM {HourlyCoarseRollup._meta.db_table} WHERE organization_id = %s "
            f"GROUP BY 1, 2, {dims}",
            [zone.key, organization_id],
        )
        cursor.execute(
            f"INSERT INTO {DailyModelRollup._meta.db_table} "  # noqa: S608
            f"(organization_id, day, provider, model, feature, "
            f"{', '.join(DAILY_MODEL_COUNTERS)}) "
            f"SELECT organization_id, day, provider, model, feature, "
            + ", ".join(
                "SUM(CASE WHEN status <> 'success' THEN calls ELSE 0 END)"
                if name == "error_calls"
                else f"SUM({name})"
                for name in DAILY_MODEL_COUNTERS
            )
            + f" FROM {DailyCoarseRollup._meta.db_table} WHERE organization_id = %s "
            f"GROUP BY organization_id, day, provider, model, feature",
            [organization_id],
        )
        per_day = ", ".join(
            "SUM(CASE WHEN status <> 'success' THEN calls ELSE 0 END) AS error_calls"
            if name == "error_calls"
            else f"SUM({name}) AS {name}"
            for name in CUSTOMER_COUNTERS
        )
        source = (
            f"(SELECT organization_id AS o, {day} AS d, customer_id AS c, model AS m, "  # noqa: S608
            f"feature AS f, {per_day} FROM {HourlyRollup._meta.db_table} "
            f"WHERE organization_id = %s GROUP BY 1, 2, 3, 4, 5) AS u"
        )
        cursor.execute(_customer_spans_insert(source), [zone.key, organization_id])
    return HourlyRollup.objects.filter(organization_id=organization_id).count()


# --- rebuilding -----------------------------------------------------------------

REBUILD_CHUNK_HOURS = 24


def daily_rollups_rebuild(organization_id: int) -> int:
    """Re-key one organization's daily tables in its current zone, from HourlyRollup.

    Holds the organization row FOR UPDATE: ledger batches for it wait (the
    proxy keeps buffering them), so none is counted twice or lost. Returns the
    number of hourly rows read.
    """
    with transaction.atomic():
        organization = Organization.objects.select_for_update().get(pk=organization_id)
        zone = org_zone(organization)
        # Batches committed after this transaction key their rows in the new zone.
        Organization.objects.filter(pk=organization_id).update(rollup_timezone=zone.key)
        for model in (DailyCoarseRollup, DailyModelRollup, CustomerRollup):
            model.objects.filter(organization_id=organization_id).delete()
        if connection.vendor == "postgresql":
            read = _rebuild_sql(organization_id, zone)
        else:
            read = _rebuild_python(organization_id, zone)
    logger.info("daily rollups of organization %s rebuilt in %s", organization_id, zone.key)
    return read


def _rebuild_python(organization_id: int, zone: ZoneInfo) -> int:
    """The writer's own path over the hourly rows, a day at a time (SQLite)."""
    from analytics.services import BUCKET_FIELDS

    hourly = HourlyRollup.objects.filter(organization_id=organization_id)
    first = hourly.order_by("hour").values_list("hour", flat=True).first()
    last = hourly.order_by("-hour").values_list("hour", flat=True).first()
    if first is None or last is None:
        return 0
    read = 0
    width = len(BUCKET_FIELDS)
    start = first
    while start <= last:  # the upserts add, so weeks and months spanning chunks come out whole
        end = start + timedelta(hours=REBUILD_CHUNK_HOURS)
        rows = hourly.filter(hour__gte=start, hour__lt=end).values_list(
            *BUCKET_FIELDS, *ROLLUP_COUNTERS
        )
        buckets = {
            tuple(row[:width]): dict(zip(ROLLUP_COUNTERS, row[width:], strict=True))
            for row in rows.iterator(chunk_size=10_000)
        }
        read += len(buckets)
        daily_rollups_add(buckets, zones={organization_id: zone})
        start = end
    return read


def daily_rollups_rebuild_pending() -> list[int]:
    """Rebuild every organization whose daily tables are keyed in another zone."""
    done = []
    for organization in Organization.objects.only("pk", "timezone", "rollup_timezone"):
        if not daily_ready(organization):
            daily_rollups_rebuild(organization.pk)
            done.append(organization.pk)
    return done


# Up to this many hourly rows, a zone change is re-grouped at once (well under
# a second); a bigger organization is re-grouped by the worker.
INLINE_REBUILD_ROWS = 20_000


def organization_saved(sender, instance, **kwargs) -> None:
    """post_save of Organization: re-key its daily tables once its zone changed."""
    if daily_ready(instance):
        return
    organization_id = instance.pk

    def rebuild() -> None:
        from analytics.tasks import daily_rollups_rebuild_task

        hourly = HourlyRollup.objects.filter(organization_id=organization_id)
        if hourly[:INLINE_REBUILD_ROWS].count() < INLINE_REBUILD_ROWS:
            daily_rollups_rebuild(organization_id)
        else:
            daily_rollups_rebuild_task.delay(organization_id)

    transaction.on_commit(rebuild)
