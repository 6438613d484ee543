"""Writes to the ledger: a batch of usage records becomes events + hourly rollups.

One transaction per batch inserts the events, upserts their HourlyRollup
buckets and appends the same sums to the delta log; the derived tables
(coarse, daily, per customer) are folded from that log within seconds
(analytics.fold), outside this transaction. Replaying a batch (the proxy's
disk spool after an outage) is safe: events are unique by `request_id` and
only newly inserted ones are added to rollups.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from operator import attrgetter
from types import SimpleNamespace
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Organization
from accounts.services import api_key_touch_many
from analytics.models import UsageEvent
from analytics.records import UsageRecord
from analytics.rollups import HOURLY, REFUSALS, hourly_add, quantize_cost, zeros
from analytics.shapes import shape_sums, usage_shapes_add

__all__ = [
    "event_values",
    "hour_of",
    "quantize_cost",
    "refusal_counts_add",
    "rollup_buckets",
    "usage_record_batch",
]


def hour_of(moment: datetime) -> datetime:
    """The UTC hour a moment falls in (rollup bucket start)."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


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

# How one event counts in a rollup bucket, counter by counter (HOURLY.counters).
_TOKENS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)
_EVENT_KEY = {  # key columns whose value is not the event's same-named attribute
    "hour": lambda event: hour_of(event.created_at),
    "api_key_id": lambda event: event.api_key_id or 0,
}
_KEY_PARTS = [_EVENT_KEY.get(name, attrgetter(name)) for name in HOURLY.key]


def bucket_key(event: EventLike) -> tuple:
    """The HourlyRollup key of an event (HOURLY.key order)."""
    return tuple(part(event) for part in _KEY_PARTS)


def _bucket_add(into: dict[str, Any], event: EventLike) -> None:
    into["calls"] += 1
    into["unpriced_calls"] += 0 if event.priced else 1
    into["streamed_calls"] += 1 if event.streamed else 0
    for name in _TOKENS:
        into[name] += getattr(event, name)
    into["cost"] += event.cost
    into["latency_ms_sum"] += event.latency_ms


def rollup_buckets(events: Sequence[EventLike]) -> dict[tuple, dict[str, Any]]:
    """Events summed per HourlyRollup bucket."""
    buckets: dict[tuple, dict[str, Any]] = {}
    for event in events:
        key = bucket_key(event)
        into = buckets.get(key)
        if into is None:
            into = buckets[key] = zeros(HOURLY.counters)
        _bucket_add(into, event)
    return buckets


def usage_record_batch(records: Sequence[UsageRecord]) -> int:
    """Write a batch to the ledger; returns how many events were new.

    Invariants: one transaction; each `request_id` is stored once however
    often the batch is replayed; HourlyRollup equals the sums of its events,
    and the derived tables equal it once the fold has run (within seconds).
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
        hourly_add(rollup_buckets(attributes))
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


@transaction.atomic
def refusal_counts_add(*, counts: dict[tuple[int, datetime, str], int]) -> None:
    """Add refused-call counts keyed (organization id, UTC hour, reason) into
    RefusalRollup. Crosses organizations on purpose: the proxy flushes every
    tenant's counters at once, each to its own row. Counts of organizations
    deleted meanwhile are dropped (they must not fail everyone else's)."""
    ids = {organization_id for organization_id, _hour, _reason in counts}
    alive = set(Organization.objects.filter(pk__in=ids).values_list("pk", flat=True))
    REFUSALS.add({key: {"count": n} for key, n in counts.items() if n and key[0] in alive})
