"""Re-price the ledger once a price exists or was corrected.

Events are re-priced in chunks, each in one transaction with the hourly
rollups it touches, so at every commit each rollup's `cost` and
`unpriced_calls` equal the sums over its events. The rollup row is locked
before its events are summed: a concurrent ingest batch adding to the same
bucket either commits first (and is counted) or waits for us.

This module writes analytics' tables on purpose (the issue makes re-pricing
pricing's job); it reuses analytics.services' bucket key so both agree on
what a bucket is. Public entry point: pricing.services.usage_reprice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Q, Sum

from pricing import engine
from pricing.usage import Usage

logger = logging.getLogger(__name__)
CHUNK_SIZE = 2000


def usage_reprice(
    *,
    model: str | None = None,
    since: datetime | None = None,
    organization=None,
    include_priced: bool = False,
) -> int:
    """Recompute cost/priced of ledger events and fix their rollups; returns
    how many events changed.

    Selects unpriced events (and, with `include_priced`, every event in range,
    e.g. after a price was corrected), optionally of one model (as asked or as
    answered), since a UTC moment, of one organization (instance or pk).
    Prices by the answered model when it has a price, else the asked one.
    Loads the newest prices first.
    """
    from analytics.models import UsageEvent

    engine.ensure_fresh(force=True)
    events = UsageEvent.objects.all()
    if organization is not None:
        events = events.filter(organization_id=getattr(organization, "pk", organization))
    if not include_priced:
        events = events.filter(priced=False)
    if model:
        events = events.filter(Q(model=model) | Q(response_model=model))
    if since is not None:
        events = events.filter(created_at__gte=since)
    changed, last_pk = 0, 0
    while True:
        chunk = list(events.filter(pk__gt=last_pk).order_by("pk")[:CHUNK_SIZE])
        if not chunk:
            return changed
        last_pk = chunk[-1].pk
        changed += _reprice_chunk(chunk)


def event_cost(event) -> Decimal | None:
    """What the engine says an event cost now (None: still no price)."""
    usage = Usage(
        input_tokens=event.input_tokens,
        output_tokens=event.output_tokens,
        cached_input_tokens=event.cached_input_tokens,
        cache_write_tokens=event.cache_write_tokens,
        cache_write_1h_tokens=event.cache_write_1h_tokens,
        reasoning_tokens=event.reasoning_tokens,
        input_audio_tokens=event.input_audio_tokens,
        output_audio_tokens=event.output_audio_tokens,
    )
    names = [event.response_model, event.model] if event.response_model else [event.model]
    for name in names:
        cost = engine.cost_for_usage(
            organization=event.organization_id,
            provider=event.provider,
            model=name,
            usage=usage,
            at=event.created_at,
        )
        if cost is not None:
            return cost
    return None


@transaction.atomic
def _reprice_chunk(chunk: list) -> int:
    from analytics.models import UsageEvent
    from analytics.services import bucket_key, derived_rollups_add, quantize_cost

    updated = []
    buckets = set()
    for event in chunk:
        cost = event_cost(event)
        new_cost, new_priced = quantize_cost(cost), cost is not None
        if new_cost == event.cost and new_priced == event.priced:
            continue
        event.cost, event.priced = new_cost, new_priced
        updated.append(event)
        buckets.add(bucket_key(event))
    if not updated:
        return 0
    UsageEvent.objects.bulk_update(updated, ["cost", "priced"], batch_size=500)
    changes = {}
    for key in sorted(buckets, key=repr):  # one lock order for every re-pricer
        change = _rollup_recompute(key)
        if change is not None:
            changes[key] = change
    # The coarse and daily rollups sum the fine one: add the same changes to them.
    derived_rollups_add(changes)
    return len(updated)


def _rollup_recompute(key: tuple) -> dict | None:
    """Set one bucket's cost and unpriced_calls to the sums over its events;
    returns what changed as counter differences (None: the bucket was rebuilt
    whole, derived tables included)."""
    from analytics.models import HourlyRollup, UsageEvent
    from analytics.services import (
        BUCKET_FIELDS,
        COUNTER_FIELDS,
        quantize_cost,
        rollup_buckets,
        rollups_add,
    )

    lookup = dict(zip(BUCKET_FIELDS, key, strict=True))
    rollup = HourlyRollup.objects.select_for_update().filter(**lookup).first()
    hour: datetime = lookup["hour"]
    api_key_id = lookup["api_key_id"]
    events = UsageEvent.objects.filter(
        organization_id=lookup["organization_id"],
        created_at__gte=hour,
        created_at__lt=hour + timedelta(hours=1),
        provider=lookup["provider"],
        model=lookup["model"],
        customer_id=lookup["customer_id"],
        feature=lookup["feature"],
        environment=lookup["environment"],
        status=lookup["status"],
        **({"api_key_id": api_key_id} if api_key_id else {"api_key__isnull": True}),
    )
    if rollup is None:
        # The ledger lost this bucket somehow; rebuild it whole from its events.
        logger.warning("rollup bucket %s was missing; rebuilt from its events", key)
        rollups_add(rollup_buckets(list(events)))
        return None
    if connection.vendor == "postgresql":
        sums = events.aggregate(cost=Sum("cost"), unpriced=Count("pk", filter=Q(priced=False)))
        cost, unpriced = sums["cost"] or Decimal(0), sums["unpriced"]
    else:
        # SQLite sums decimals as floats: add them exactly in Python instead.
        cost, unpriced = Decimal(0), 0
        for event_cost_value, priced in events.values_list("cost", "priced"):
            cost += event_cost_value
            unpriced += 0 if priced else 1
    change: dict[str, Any] = dict.fromkeys(COUNTER_FIELDS, 0)
    change["cost"] = quantize_cost(cost) - rollup.cost
    change["unpriced_calls"] = unpriced - rollup.unpriced_calls
    rollup.cost = quantize_cost(cost)
    rollup.unpriced_calls = unpriced
    rollup.save(update_fields=["cost", "unpriced_calls"])
    return change


def parse_since(text: str) -> datetime:
    """A --since value: an ISO date (midnight UTC) or datetime (naive means UTC)."""
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
