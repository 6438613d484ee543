"""Writes for alerts raised: budget thresholds (once per budget, period and
threshold), test alerts, and their deliveries to channels (retried with
exponential backoff for AISPENDTRACK_ALERT_RETRY_HOURS, idempotent by event)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts.models import Organization
from alerts.models import (
    AlertChannel,
    AlertEvent,
    Budget,
    BudgetScope,
    Delivery,
    DeliveryStatus,
)
from alerts.notify import deliver
from alerts.selectors import BudgetStatus, budget_status

logger = logging.getLogger("aispendtrack.alerts")

HUNDRED = 100
MAX_BACKOFF_SECONDS = 3600
# How long a worker holds a delivery it is sending (another worker skips it).
LEASE_SECONDS = 120


def public_url(path: str) -> str:
    base = (settings.AISPENDTRACK_PUBLIC_URL or "http://localhost:8000").rstrip("/")
    return base + path


def scope_label(budget: Budget) -> str:
    if budget.scope == BudgetScope.ORGANIZATION:
        return "whole organization"
    return f"{budget.get_scope_display().lower()} {budget.scope_value}"


def budget_event_data(status: BudgetStatus, threshold: int) -> dict[str, Any]:
    budget = status.budget
    return {
        "budget": {
            "id": budget.pk,
            "name": budget.name,
            "scope": budget.scope,
            "scope_value": budget.scope_value,
            "scope_label": scope_label(budget),
            "period": budget.period,
            "amount": format(budget.amount.normalize(), "f"),
            "action": budget.action,
        },
        "threshold": threshold,
        "spend": format(status.spend, "f"),
        "percent_used": format(status.percent_used, "f"),
        "unpriced_calls": status.unpriced_calls,
        "period_start": status.period_start.isoformat(),
        "period_end": status.period_end.isoformat(),
        "url": public_url(reverse("budget_edit", args=[budget.pk])),
    }


def alert_event_fire(
    *,
    organization: Organization,
    kind: str,
    data: dict[str, Any],
    channels: Iterable[AlertChannel],
    budget: Budget | None = None,
    period_start=None,
    threshold: int | None = None,
    spend=0,
    dedup_key: str = "",
) -> AlertEvent | None:
    """Record an alert and queue its deliveries. None if it had already fired
    (the unique constraints make a second evaluation a no-op)."""
    try:
        with transaction.atomic():
            event = AlertEvent.objects.create(
                organization=organization,
                kind=kind,
                budget=budget,
                period_start=period_start,
                threshold=threshold,
                spend=spend,
                dedup_key=dedup_key,
                data=data,
            )
            deliveries = [
                Delivery.objects.create(organization=organization, event=event, channel=channel)
                for channel in channels
                if channel.is_active and channel.organization_id == organization.pk
            ]
            ids = [delivery.pk for delivery in deliveries]
            transaction.on_commit(lambda: _enqueue(ids))
    except IntegrityError:
        return None
    return event


def _enqueue(delivery_ids: list[int]) -> None:
    from alerts.tasks import delivery_send_task  # tasks import this module

    for delivery_id in delivery_ids:
        delivery_send_task.delay(delivery_id)


def budget_evaluate(*, organization: Organization, budget: Budget, now: datetime | None = None):
    """Fire each threshold the budget's current period has crossed and not yet
    fired. When several are crossed at once (a budget created late in a
    period, a burst), all are recorded but only the highest is delivered."""
    status = budget_status(organization=organization, budget=budget, now=now)
    crossed = [t for t in budget.thresholds if status.spend * HUNDRED >= budget.amount * t]
    if not crossed:
        return []
    fired = set(
        AlertEvent.objects.filter(
            budget=budget, period_start=status.period.start, threshold__in=crossed
        ).values_list("threshold", flat=True)
    )
    fresh = sorted(t for t in crossed if t not in fired)
    events = []
    for threshold in fresh:
        kind = AlertEvent.Kind.EXCEEDED if threshold >= HUNDRED else AlertEvent.Kind.THRESHOLD
        channels = list(budget.channels.all()) if threshold == fresh[-1] else []
        event = alert_event_fire(
            organization=organization,
            kind=kind,
            data=budget_event_data(status, threshold),
            channels=channels,
            budget=budget,
            period_start=status.period.start,
            threshold=threshold,
            spend=status.spend,
        )
        if event is not None:
            events.append(event)
    return events


def budgets_evaluate_all_orgs(*, now: datetime | None = None) -> int:
    """Every active budget of every organization (Celery beat). Returns alerts fired."""
    fired = 0
    budgets = Budget.objects.filter(is_active=True).select_related("organization")
    for budget in budgets.prefetch_related("channels"):
        try:
            fired += len(budget_evaluate(organization=budget.organization, budget=budget, now=now))
        except Exception:  # one budget's failure must not stop the others
            logger.exception("budget %s could not be evaluated", budget.pk)
    return fired


def alert_channel_test(*, organization: Organization, channel: AlertChannel) -> AlertEvent:
    """A `test` event delivered to this one channel (Settings → Send test alert)."""
    data = {"message": "Test alert from AiSpendTrack", "channel": {"id": channel.pk}}
    event = alert_event_fire(organization=organization, kind="test", data=data, channels=[channel])
    assert event is not None  # test events have no dedup key
    return event


# --- delivery ---------------------------------------------------------------------


def backoff_seconds(attempts: int) -> float:
    """Delay before attempt `attempts + 1`: base × 2^(attempts − 1), at most an hour."""
    base = float(settings.AISPENDTRACK_ALERT_RETRY_BASE_SECONDS)
    return min(base * 2 ** max(0, attempts - 1), MAX_BACKOFF_SECONDS)


def _claim(delivery_id: int, now: datetime) -> bool:
    """Take the delivery for one attempt unless another worker holds it or it is done."""
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return bool(
        Delivery.objects.filter(Q(pk=delivery_id), due, status=DeliveryStatus.PENDING).update(
            next_attempt_at=now + timedelta(seconds=LEASE_SECONDS)
        )
    )


def delivery_attempt(*, delivery_id: int) -> float | None:
    """Try one pending delivery once. Returns seconds until it should be tried
    again, or None when it is finished (delivered, given up, or not ours to send)."""
    now = timezone.now()
    if not _claim(delivery_id, now):
        return None
    delivery = Delivery.objects.select_related("event__organization", "channel").get(pk=delivery_id)
    outcome = deliver(delivery.channel, delivery.event)
    delivery.attempts += 1
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error
    if outcome.ok:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = timezone.now()
        delivery.next_attempt_at = None
        delay = None
    else:
        delay = backoff_seconds(delivery.attempts)
        window = timedelta(hours=float(settings.AISPENDTRACK_ALERT_RETRY_HOURS))
        retry_at = timezone.now() + timedelta(seconds=delay)
        if retry_at > delivery.created_at + window:
            delivery.status, delay = DeliveryStatus.FAILED, None
            delivery.next_attempt_at = None
        else:
            delivery.next_attempt_at = retry_at
    delivery.save(
        update_fields=[
            "attempts",
            "last_status_code",
            "last_error",
            "status",
            "delivered_at",
            "next_attempt_at",
        ]
    )
    return delay


def deliveries_due_all_orgs(*, now: datetime | None = None) -> list[int]:
    """Pending deliveries whose retry time has passed (a lost task is picked up)."""
    now = now or timezone.now()
    return list(
        Delivery.objects.filter(status=DeliveryStatus.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .values_list("pk", flat=True)[:1000]
    )
