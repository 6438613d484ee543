"""An independent oracle for the rollups: plain SQL GROUP BY over the raw
events (PostgreSQL), never the code's own bucketing. On SQLite, which has no
time zones, the same grouping is done in Python straight from the events.

Shapes match tests/analytics/test_daily.py's `stored()`: daily coarse rows,
daily model rows, customer interval rows, plus the two hourly tables.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connection

from analytics.models import UsageEvent

COARSE = ("provider", "model", "feature", "environment", "api_key_id", "status")
COUNTERS = (
    "calls",
    "unpriced_calls",
    "streamed_calls",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "cost",
    "latency_ms_sum",
)
CUSTOMER_COUNTERS = ("calls", "unpriced_calls", "error_calls", "input_tokens", "cost")
_SUMS = (
    "COUNT(*)",
    "SUM(CASE WHEN priced THEN 0 ELSE 1 END)",
    "SUM(CASE WHEN streamed THEN 1 ELSE 0 END)",
    "SUM(input_tokens)",
    "SUM(output_tokens)",
    "SUM(cached_input_tokens)",
    "SUM(cache_write_tokens)",
    "SUM(cache_write_1h_tokens)",
    "SUM(reasoning_tokens)",
    "SUM(cost)",
    "SUM(latency_ms)",
)
_ERRORS = "SUM(CASE WHEN status <> 'success' THEN 1 ELSE 0 END)"
_TABLE = UsageEvent._meta.db_table


def _plain(rows, width: int, names: tuple[str, ...]) -> dict:
    return {
        tuple(row[:width]): {n: Decimal(v) for n, v in zip(names, row[width:], strict=True)}
        for row in rows
    }


def oracle(org) -> dict[str, dict]:
    """Every rollup table of `org`, computed from its events."""
    if connection.vendor == "postgresql":
        return _oracle_sql(org)
    return _oracle_python(org)


def _oracle_sql(org) -> dict[str, dict]:
    zone = org.rollup_timezone or "UTC"
    day = "(date_trunc('hour', created_at) AT TIME ZONE %s)::date"
    dims = "provider, model, feature, environment, COALESCE(api_key_id, 0), status"
    sums = ", ".join(_SUMS)
    out: dict[str, dict] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT date_trunc('hour', created_at), {dims}, customer_id, {sums} "  # noqa: S608
            f"FROM {_TABLE} WHERE organization_id = %s GROUP BY 1, 2, 3, 4, 5, 6, 7, 8",
            [org.pk],
        )
        out["hourly"] = _plain(cursor.fetchall(), 8, COUNTERS)
        cursor.execute(
            f"SELECT date_trunc('hour', created_at), {dims}, {sums} "  # noqa: S608
            f"FROM {_TABLE} WHERE organization_id = %s GROUP BY 1, 2, 3, 4, 5, 6, 7",
            [org.pk],
        )
        out["hourly_coarse"] = _plain(cursor.fetchall(), 7, COUNTERS)
        cursor.execute(
            f"SELECT {day}, {dims}, {sums} FROM {_TABLE} "  # noqa: S608
            f"WHERE organization_id = %s GROUP BY 1, 2, 3, 4, 5, 6, 7",
            [zone, org.pk],
        )
        out["coarse"] = _plain(cursor.fetchall(), 7, COUNTERS)
        cursor.execute(
            f"SELECT {day}, provider, model, feature, {sums}, {_ERRORS} "  # noqa: S608
            f"FROM {_TABLE} WHERE organization_id = %s GROUP BY 1, 2, 3, 4",
            [zone, org.pk],
        )
        out["models"] = _plain(cursor.fetchall(), 4, (*COUNTERS, "error_calls"))
        spans = [("d", "day"), ("w", "date_trunc('week', day)::date")]
        spans += [("m", "date_trunc('month', day)::date")]
        splits = (("", "''"), ("model", "model"), ("feature", "feature"), ("status", "status"))
        parts = [
            f"SELECT '{span}' AS span, {start} AS start, '{dim}' AS dimension, "  # noqa: S608
            f"{value} AS value, customer_id, priced, status, input_tokens, cost FROM d"
            for span, start in spans
            for dim, value in splits
        ]
        cursor.execute(
            f"WITH d AS (SELECT {day} AS day, * FROM {_TABLE} WHERE organization_id = %s) "  # noqa: S608
            f"SELECT span, start, dimension, value, customer_id, COUNT(*), "
            f"SUM(CASE WHEN priced THEN 0 ELSE 1 END), {_ERRORS}, SUM(input_tokens), SUM(cost) "
            f"FROM ({' UNION ALL '.join(parts)}) AS x GROUP BY 1, 2, 3, 4, 5",
            [zone, org.pk],
        )
        out["customers"] = _plain(cursor.fetchall(), 5, CUSTOMER_COUNTERS)
    return out


def _oracle_python(org) -> dict[str, dict]:
    zone = ZoneInfo(org.rollup_timezone or "UTC")
    tables: dict[str, dict] = {
        name: defaultdict(lambda: defaultdict(Decimal))
        for name in ("hourly", "hourly_coarse", "coarse", "models", "customers")
    }
    for event in UsageEvent.objects.filter(organization=org):
        hour = event.created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        day = hour.astimezone(zone).date()
        dims: tuple = (event.provider, event.model, event.feature, event.environment)
        dims += (event.api_key_id or 0, event.status)
        error = 1 if event.status != "success" else 0
        values = {
            "calls": 1,
            "unpriced_calls": 0 if event.priced else 1,
            "streamed_calls": 1 if event.streamed else 0,
            "input_tokens": event.input_tokens,
            "output_tokens": event.output_tokens,
            "cached_input_tokens": event.cached_input_tokens,
            "cache_write_tokens": event.cache_write_tokens,
            "cache_write_1h_tokens": event.cache_write_1h_tokens,
            "reasoning_tokens": event.reasoning_tokens,
            "cost": event.cost,
            "latency_ms_sum": event.latency_ms,
            "error_calls": error,
        }
        keyed = {
            "hourly": (hour, *dims, event.customer_id),
            "hourly_coarse": (hour, *dims),
            "coarse": (day, *dims),
            "models": (day, event.provider, event.model, event.feature),
        }
        for name, key in keyed.items():
            into = tables[name][key]
            for counter in (*COUNTERS, "error_calls") if name == "models" else COUNTERS:
                into[counter] += values[counter]
        starts = [("d", day), ("w", day - timedelta(days=day.weekday()))]
        starts += [("m", day.replace(day=1))]
        for span, start in starts:
            splits = (("model", event.model), ("feature", event.feature), ("status", event.status))
            for dim, value in (("", ""), *splits):
                into = tables["customers"][(span, start, dim, value, event.customer_id)]
                for counter in CUSTOMER_COUNTERS:
                    into[counter] += values[counter]
    return {name: {k: dict(v) for k, v in table.items()} for name, table in tables.items()}
