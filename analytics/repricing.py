"""Re-price the ledger once a price exists or was corrected.

Pricing only answers prices (`pricing.engine.cost_for_call`, the same
function and model precedence the proxy prices calls with at ingest); the
ledger's events and rollups are analytics' to change. Events are re-priced in
chunks, each in one transaction with the HourlyRollup buckets it touches, and
the changes to those buckets are appended to the delta log, so the derived
tables change the one way they always do: through the fold (analytics.fold).
The rollup row is locked before its events are summed: a concurrent ingest
batch adding to the same bucket either commits first (and is counted) or waits.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from accounts.models import Organization
from analytics.models import HourlyRollup, RepriceRun, RepriceStatus, UsageEvent
from analytics.rollups import (
    DELTA,
    HOURLY,
    PROPERTY_DELTA,
    hourly_add,
    hourly_of,
    quantize_cost,
    unshaped,
    zeros,
)
from analytics.services import (
    EVENT_COLUMNS,
    hourly_key,
    property_buckets,
    rollup_buckets,
    stored_row,
)
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
    Loads the newest prices first. With no price changed, changes nothing.
    """
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


def usage_reprice_models(*, models: set[tuple[str, str]]) -> int:
    """Re-price every event (priced or not) whose model the engine resolves
    to one of these (provider slug, model id) pairs, dated aliases included
    (the price admin's action)."""
    engine.ensure_fresh(force=True)
    names: set[str] = set()
    seen = UsageEvent.objects.values_list("provider", "model", "response_model").distinct()
    for provider, *event_names in seen.order_by():
        for name in event_names:
            if name and engine.model_resolve(provider=provider, model=name) in models:
                names.add(name)
    return sum(usage_reprice(model=name, include_priced=True) for name in sorted(names))


# --- Background runs after a price is saved (issue 12: prices apply themselves) ---

# Any usage will do: the question is only whether a price exists.
_PROBE = Usage(input_tokens=1, output_tokens=1)


def unpriced_priceable(*, organization) -> dict[str, int]:
    """The organization's unpriced calls that the prices in force now would
    price, counted per model name (as asked, else as answered). Unpriced events
    are few and indexed (ue_priced_model); one engine look-up per distinct
    model, with the engine's prices as loaded (reprice_runs_create refreshes them)."""
    combos = (
        UsageEvent.objects.filter(organization=organization, priced=False)
        .exclude(input_tokens=0, output_tokens=0)  # never re-priced (see _reprice_chunk)
        .values_list("provider", "model", "response_model")
        .annotate(n=Count("pk"), newest=Max("created_at"))
        .order_by()
    )
    counts: dict[str, int] = {}
    for provider, model, response_model, n, newest in combos:
        cost = engine.cost_for_call(
            organization=getattr(organization, "pk", organization),
            provider=provider,
            model=model,
            response_model=response_model,
            usage=_PROBE,
            at=newest,
        )
        if cost is not None:
            name = model or response_model
            counts[name] = counts.get(name, 0) + n
    return counts


def reprice_runs_create(*, label: str, organization=None) -> list[RepriceRun]:
    """A queued RepriceRun for each organization (this one, or every one with
    unpriced calls: a list price serves them all) whose unpriced calls the
    prices now in force would price; none where there is nothing to do.
    The caller enqueues them (analytics.tasks.reprice_runs_start)."""
    if organization is not None:
        organizations = [organization]
    else:
        ids = UsageEvent.objects.filter(priced=False).values("organization_id").distinct()
        organizations = list(Organization.objects.filter(pk__in=ids).order_by("pk"))
    engine.ensure_fresh(force=True)  # the price just saved
    runs = []
    for org in organizations:
        counts = unpriced_priceable(organization=org)
        if counts:
            runs.append(
                RepriceRun.objects.create(
                    organization=org,
                    label=label[:200],
                    model_names=sorted(counts),
                    calls=sum(counts.values()),
                )
            )
    return runs


def reprice_run_execute(*, run_id: int) -> int:
    """Re-price one queued run's models (unpriced calls only) and record how
    many calls changed. Runs once: a redelivered task finds it taken."""
    if not RepriceRun.objects.filter(pk=run_id, status=RepriceStatus.QUEUED).update(
        status=RepriceStatus.RUNNING
    ):
        return 0
    run = RepriceRun.objects.get(pk=run_id)
    try:
        changed = sum(
            usage_reprice(organization=run.organization_id, model=name) for name in run.model_names
        )
    except Exception as exc:
        RepriceRun.objects.filter(pk=run_id).update(
            status=RepriceStatus.FAILED, error=str(exc)[:500], finished_at=timezone.now()
        )
        raise
    RepriceRun.objects.filter(pk=run_id).update(
        status=RepriceStatus.DONE, repriced=changed, finished_at=timezone.now()
    )
    return changed


def event_cost(event: UsageEvent) -> Decimal | None:
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
    return engine.cost_for_call(
        organization=event.organization_id,
        provider=event.provider,
        model=event.model,
        response_model=event.response_model,
        usage=usage,
        at=event.created_at,
    )


@transaction.atomic
def _reprice_chunk(chunk: list[UsageEvent]) -> int:
    updated = []
    buckets = set()
    for event in chunk:
        if event.input_tokens == 0 and event.output_tokens == 0:
            # No usage counted: its cost came from the call's outcome (free,
            # or unknown usage), never from a price, so no price changes it.
            continue
        cost = event_cost(event)
        new_cost, new_priced = quantize_cost(cost), cost is not None
        if new_cost == event.cost and new_priced == event.priced:
            continue
        event.cost, event.priced = new_cost, new_priced
        updated.append(event)
        buckets.add(hourly_key(stored_row(event)))
    if not updated:
        return 0
    property_changes = _property_changes([event for event in updated if event.properties])
    UsageEvent.objects.bulk_update(updated, ["cost", "priced"], batch_size=500)
    changes = {}
    for key in sorted(buckets, key=repr):  # the lock order every rollup writer uses
        change = _rollup_recompute(key)
        if change is not None:
            changes[key] = change
    # The derived tables follow through the fold, as for every other change
    # (costs only: the simulator's token shapes do not change).
    DELTA.append(unshaped(changes))
    PROPERTY_DELTA.append(property_changes)
    return len(updated)


def _property_changes(events: list[UsageEvent]) -> dict[tuple, dict[str, Any]]:
    """What re-pricing these events changes in the property rollups, as delta
    rows: their new cost and priced against those stored now, read under a
    row lock (a concurrent re-pricing of the same events waits, then sees
    these values and changes nothing)."""
    if not events:
        return {}
    stored = dict(
        (pk, (cost, priced))
        for pk, cost, priced in UsageEvent.objects.select_for_update()
        .filter(pk__in=[event.pk for event in events])
        .order_by("pk")
        .values_list("pk", "cost", "priced")
    )
    at = {name: n for n, name in enumerate(EVENT_COLUMNS)}
    before = []
    events = [event for event in events if event.pk in stored]  # not purged meanwhile
    for event in events:
        row = list(stored_row(event))
        row[at["cost"]], row[at["priced"]] = stored[event.pk]
        before.append(tuple(row))
    new, old = property_buckets([stored_row(e) for e in events]), property_buckets(before)
    changes = {}
    for key, values in new.items():
        change = {name: values[name] - old[key][name] for name in PROPERTY_DELTA.counters}
        if any(change.values()):
            changes[key] = change
    return changes


def _rollup_recompute(key: tuple) -> dict[str, Any] | None:
    """Set one bucket's cost and unpriced_calls to the sums over its events;
    returns what changed as counter differences (None: the bucket was missing
    and was added whole, delta included)."""
    lookup = dict(zip(HOURLY.key, key, strict=True))
    rollup = HourlyRollup.objects.select_for_update().filter(**lookup).first()
    hour: datetime = lookup["hour"]
    api_key_id = lookup["api_key_id"]
    events = UsageEvent.objects.filter(
        created_at__gte=hour,
        created_at__lt=hour + timedelta(hours=1),
        **{name: value for name, value in lookup.items() if name not in ("hour", "api_key_id")},
        **({"api_key_id": api_key_id} if api_key_id else {"api_key__isnull": True}),
    )
    if rollup is None:
        logger.warning("rollup bucket %s was missing; rebuilt from its events", key)
        # Its events' shapes were added when they were recorded.
        hourly_add(unshaped(hourly_of(rollup_buckets([stored_row(e) for e in events]))))
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
    change = zeros(HOURLY.counters)
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
