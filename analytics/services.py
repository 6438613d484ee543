"""Writes to the ledger: a batch of usage records becomes events + rollups.

One transaction per batch inserts the events and upserts their rollups
(hourly, and daily in the organization's zone: analytics.daily), so
aggregates are exactly as fresh as the events. Replaying a batch (the proxy's
disk spool after an outage) is safe: events are unique by `request_id` and
only newly inserted ones are added to rollups.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Organization
from accounts.services import api_key_touch_many
from analytics.daily import daily_rollups_add, sums_add
from analytics.models import (
    COST_PLACES,
    ROLLUP_COUNTERS,
    HourlyCoarseRollup,
    HourlyRollup,
    RefusalRollup,
    UsageEvent,
)
from analytics.records import UsageRecord
from analytics.shapes import shape_sums, usage_shapes_add

QUANTUM = Decimal(1).scaleb(-COST_PLACES)

# Rollup dimensions (the unique key) and the counters summed into them.
BUCKET_FIELDS = (
    "organization_id",
    "hour",
    "provider",
    "model",
    "customer_id",
    "feature",
    "environment",
    "api_key_id",
    "status",
)
# The coarse rollup drops customer_id (index 4 of the bucket key).
COARSE_BUCKET_FIELDS = tuple(name for name in BUCKET_FIELDS if name != "customer_id")
_CUSTOMER_INDEX = BUCKET_FIELDS.index("customer_id")
COUNTER_FIELDS = ROLLUP_COUNTERS


def hour_of(moment: datetime) -> datetime:
    """The UTC hour a moment falls in (rollup bucket start)."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def quantize_cost(cost: Decimal | None) -> Decimal:
    return (cost or Decimal(0)).quantize(QUANTUM)


def event_values(record: UsageRecord) -> dict[str, Any]:
    """A record as UsageEvent field values (attnames), lengths clipped to the columns."""
    usage = record.usage
    return {
        "organization_id": record.organization_id,
        "api_key_id": record.api_key_id,
        "request_id": record.request_id,
        "created_at": record.created_at,
        "provider": record.provider,
        "endpoint": record.endpoint[:200],
        "model": record.model[:200],
        "response_model": record.response_model[:200],
        "customer_id": record.customer_id,
        "feature": record.feature,
        "trace_id": record.trace_id,
        "environment": record.environment,
        "properties": record.properties,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_write_1h_tokens": usage.cache_write_1h_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "input_audio_tokens": usage.input_audio_tokens,
        "output_audio_tokens": usage.output_audio_tokens,
        "cost": quantize_cost(record.cost),
        "priced": record.cost is not None,
        "status": record.status,
        "http_status": record.http_status,
        "latency_ms": max(0, record.latency_ms),
        "ttfb_ms": record.ttfb_ms,
        "streamed": record.streamed,
        "upstream_request_id": record.upstream_request_id[:200],
    }


def event_from_record(record: UsageRecord) -> UsageEvent:
    return UsageEvent(**event_values(record))


# A UsageEvent, or anything with its attributes (the ingest path passes
# SimpleNamespaces of `event_values`, which are 40× cheaper to build).
EventLike = UsageEvent | SimpleNamespace


@dataclass
class _Bucket:
    values: dict[str, int | Decimal]

    @classmethod
    def empty(cls) -> _Bucket:
        return cls({name: (Decimal(0) if name == "cost" else 0) for name in COUNTER_FIELDS})

    def merge(self, other: _Bucket) -> None:
        for name, value in other.values.items():
            self.values[name] += value

    def add(self, event: EventLike) -> None:
        v = self.values
        v["calls"] += 1
        v["unpriced_calls"] += 0 if event.priced else 1
        v["streamed_calls"] += 1 if event.streamed else 0
        for name in (
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "cache_write_1h_tokens",
            "reasoning_tokens",
        ):
            v[name] += getattr(event, name)
        v["cost"] += event.cost
        v["latency_ms_sum"] += event.latency_ms


def bucket_key(event: EventLike) -> tuple:
    return (
        event.organization_id,
        hour_of(event.created_at),
        event.provider,
        event.model,
        event.customer_id,
        event.feature,
        event.environment,
        event.api_key_id or 0,
        event.status,
    )


def rollup_buckets(events: Sequence[EventLike]) -> dict[tuple, _Bucket]:
    buckets: dict[tuple, _Bucket] = {}
    for event in events:
        buckets.setdefault(bucket_key(event), _Bucket.empty()).add(event)
    return buckets


def usage_record_batch(records: Sequence[UsageRecord]) -> int:
    """Write a batch to the ledger; returns how many events were new.

    Invariants: one transaction; each `request_id` is stored once however
    often the batch is replayed; rollups equal the sums of their events.
    Raises the database's error when it is unreachable (the caller spools).
    """
    if not records:
        return 0
    with transaction.atomic():
        seen = set(
            UsageEvent.objects.filter(request_id__in=[r.request_id for r in records]).values_list(
                "request_id", flat=True
            )
        )
        fresh = {r.request_id: r for r in records if r.request_id not in seen}
        if not fresh:
            return 0
        rows = [event_values(record) for record in fresh.values()]
        if connection.vendor == "postgresql":
            _events_copy(rows)
        else:
            UsageEvent.objects.bulk_create([UsageEvent(**row) for row in rows], batch_size=500)
        # Rollups need only attributes, not model instances (2 µs vs 90 µs apiece).
        attributes = [SimpleNamespace(**row) for row in rows]
        rollups_add(rollup_buckets(attributes))
        usage_shapes_add(shape_sums(attributes, hour_of))  # the cost simulator's sums
        key_ids = {row["api_key_id"] for row in rows if row["api_key_id"]}
        api_key_touch_many(key_ids=key_ids, at=timezone.now())
    return len(rows)


_EVENT_FIELDS = [f for f in UsageEvent._meta.concrete_fields if not f.primary_key]
_EVENT_COPY_SQL = (
    f"COPY {UsageEvent._meta.db_table} ({', '.join(f.column for f in _EVENT_FIELDS)}) FROM STDIN"
)


def _events_copy(rows: Sequence[dict[str, Any]]) -> None:
    """Insert events with PostgreSQL's COPY: the ORM's bulk INSERT spends most
    of its time compiling SQL and adapting parameters (bench: ingest)."""
    with connection.cursor() as cursor, cursor.cursor.copy(_EVENT_COPY_SQL) as copy:
        for row in rows:
            copy.write_row(
                [
                    json.dumps(row[f.attname]) if f.attname == "properties" else row[f.attname]
                    for f in _EVENT_FIELDS
                ]
            )


def coarse_sums(sums: dict[tuple, dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """Fine bucket sums with the customer dimension dropped (HourlyCoarseRollup)."""
    coarse: dict[tuple, dict[str, Any]] = {}
    for key, values in sums.items():
        sums_add(coarse, key[:_CUSTOMER_INDEX] + key[_CUSTOMER_INDEX + 1 :], values, COUNTER_FIELDS)
    return coarse


def rollups_add(buckets: dict[tuple, _Bucket]) -> None:
    """Add bucket sums into HourlyRollup and every table derived from it,
    creating rows as needed."""
    if not buckets:
        return
    sums = {key: bucket.values for key, bucket in buckets.items()}
    rollup_rows_add(HourlyRollup, BUCKET_FIELDS, COUNTER_FIELDS, sums)
    derived_rollups_add(sums)


def derived_rollups_add(sums: dict[tuple, dict[str, Any]]) -> None:
    """Add HourlyRollup bucket sums, or changes to them, to the tables derived
    from it: HourlyCoarseRollup, DailyCoarseRollup and CustomerRollup.

    Writers that change HourlyRollup rows in place (pricing.reprice sets a
    bucket's cost and unpriced_calls) pass the differences, in the same
    transaction, so the derived tables keep equalling the fine one.
    """
    rollup_rows_add(HourlyCoarseRollup, COARSE_BUCKET_FIELDS, COUNTER_FIELDS, coarse_sums(sums))
    daily_rollups_add(sums)


def rollup_rows_add(
    model, key_fields: tuple[str, ...], counters: tuple[str, ...], rows: dict[tuple, dict]
) -> None:
    """Add counter sums into rows of one rollup table, creating rows as needed.

    PostgreSQL: one INSERT … ON CONFLICT DO UPDATE (numeric arithmetic, exact,
    safe under concurrent workers). SQLite stores decimals as REAL, so adding
    in SQL would round; there the sums are added in Python under the write
    lock that transaction_mode=IMMEDIATE already holds.
    """
    if connection.vendor == "postgresql":
        _rollups_upsert_sql(model, key_fields, counters, rows)
    else:
        _rollups_merge_python(model, key_fields, counters, rows)


def _rollups_upsert_sql(
    model, key_fields: tuple[str, ...], counters: tuple[str, ...], rows: dict[tuple, dict]
) -> None:
    """One INSERT … SELECT FROM unnest(column arrays) ON CONFLICT per table: a
    constant statement (parsed once, not per batch) whatever the batch size."""
    if not rows:
        return
    # Rows are locked in this order; pricing's re-pricer locks buckets in the
    # same order (sorted by repr), so the two never deadlock.
    items = sorted(rows.items(), key=lambda item: repr(item[0]))
    columns: list[list[Any]] = [[] for _ in (*key_fields, *counters)]
    for key, values in items:
        for n, value in enumerate(key):
            columns[n].append(value)
        for n, name in enumerate(counters, start=len(key_fields)):
            columns[n].append(values[name])
    with connection.cursor() as cursor:
        cursor.execute(_upsert_sql(model, key_fields, counters), columns)


_UPSERT_SQL: dict[tuple, str] = {}


def _upsert_sql(model, key_fields: tuple[str, ...], counters: tuple[str, ...]) -> str:
    cache_key = (model, key_fields, counters)
    if cache_key not in _UPSERT_SQL:
        table = model._meta.db_table
        names = (*key_fields, *counters)
        by_attname = {f.attname: f for f in model._meta.concrete_fields}
        arrays = ", ".join(f"%s::{by_attname[n].db_type(connection)}[]" for n in names)
        updates = ", ".join(f"{name} = {table}.{name} + EXCLUDED.{name}" for name in counters)
        _UPSERT_SQL[cache_key] = (
            f"INSERT INTO {table} ({', '.join(names)}) "  # noqa: S608 (fixed identifiers)
            f"SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({', '.join(key_fields)}) DO UPDATE SET {updates}"
        )
    return _UPSERT_SQL[cache_key]


def _rollups_merge_python(
    model, key_fields: tuple[str, ...], counters: tuple[str, ...], rows: dict[tuple, dict]
) -> None:
    for key, values in rows.items():
        lookup = dict(zip(key_fields, key, strict=True))
        row = model.objects.filter(**lookup).first()
        if row is None:
            model.objects.create(**lookup, **values)
            continue
        for name in counters:
            setattr(row, name, getattr(row, name) + values[name])
        if "cost" in counters:
            row.cost = quantize_cost(row.cost)
        row.save(update_fields=list(counters))


REFUSAL_KEY = ("organization_id", "hour", "reason")


@transaction.atomic
def refusal_counts_add(*, counts: dict[tuple[int, datetime, str], int]) -> None:
    """Add refused-call counts keyed (organization id, UTC hour, reason) into
    RefusalRollup. Crosses organizations on purpose: the proxy flushes every
    tenant's counters at once, each to its own row. Counts of organizations
    deleted meanwhile are dropped (they must not fail everyone else's)."""
    ids = {organization_id for organization_id, _hour, _reason in counts}
    alive = set(Organization.objects.filter(pk__in=ids).values_list("pk", flat=True))
    rows = {key: {"count": n} for key, n in counts.items() if n and key[0] in alive}
    rollup_rows_add(RefusalRollup, REFUSAL_KEY, ("count",), rows)
