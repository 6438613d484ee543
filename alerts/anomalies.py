"""Anomaly detection: today's spend far above its usual level.

Per organization, and per customer and per feature (the top 100 of each by
spend over the last 8 local days): today's spend so far, in the
organization's zone, above ANOMALY_RATIO × the median of the previous 7 full
days (today excluded, so a spike does not raise its own bar) fires
`anomaly.detected` to the organization's default channels, at most once per
scope per day. Never below the floor (AISPENDTRACK_ANOMALY_FLOOR, $1), never
on a zero baseline (a new customer is not an anomaly). Read from the daily
rollups only (DailyModelRollup, CustomerRollup): a few hundred rows per
organization whatever the event count.
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import F

from accounts.models import Organization
from alerts.events import alert_event_fire, public_url
from alerts.models import AlertChannel, AlertEvent, AlertSettings
from analytics.intervals import daily_ready
from analytics.models import CustomerRollup, DailyModelRollup, Span
from analytics.periods import org_today
from analytics.selectors import money
from analytics.selectors._common import cost_sum

logger = logging.getLogger("aispendtrack.alerts")

ANOMALY_RATIO = Decimal(3)
TOP_SCOPES = 100
BASELINE_DAYS = 7


def anomaly_floor(organization: Organization) -> Decimal:
    """The organization's floor (AlertSettings), else AISPENDTRACK_ANOMALY_FLOOR."""
    own = (
        AlertSettings.objects.filter(organization=organization)
        .values_list("anomaly_floor", flat=True)
        .first()
    )
    return own if own is not None else Decimal(str(settings.AISPENDTRACK_ANOMALY_FLOOR))


def is_anomaly(today: Decimal, previous: list[Decimal], *, floor: Decimal) -> Decimal | None:
    """The baseline (median of the previous days, missing days as $0) when
    `today` is an anomaly, else None."""
    days = previous + [Decimal(0)] * (BASELINE_DAYS - len(previous))
    baseline = Decimal(statistics.median(days))
    if baseline <= 0 or today < floor or today <= ANOMALY_RATIO * baseline:
        return None
    return baseline


def _series(rows, key: str, day_field: str) -> dict[Any, dict[date, Decimal]]:
    out: dict[Any, dict[date, Decimal]] = defaultdict(dict)
    for row in rows:
        out[row[key]][row[day_field]] = money(row["total"])
    return out


def _top(qs, column: str, today: date) -> str:
    row = (
        qs.values(column)
        .annotate(total=cost_sum())
        .order_by(F("total").desc(nulls_last=True))
        .first()
    )
    return row[column] if row and row["total"] else ""


def anomalies_detect(*, organization: Organization, now: datetime | None = None) -> int:
    """Check the organization, its top customers and features; returns alerts fired."""
    if not daily_ready(organization):
        return 0  # daily tables being rebuilt in a new zone: next run
    today = org_today(organization, now=now)
    first = today - timedelta(days=BASELINE_DAYS)
    previous_days = [first + timedelta(days=n) for n in range(BASELINE_DAYS)]
    floor = anomaly_floor(organization)
    days = DailyModelRollup.objects.filter(
        organization=organization, day__gte=first, day__lte=today
    )
    customers = CustomerRollup.objects.filter(
        organization=organization, span=Span.DAY, start__gte=first, start__lte=today
    )
    scopes: list[tuple[str, str, dict[date, Decimal]]] = []
    org_rows = days.values("day").annotate(total=cost_sum())
    scopes.append(("organization", "", {row["day"]: money(row["total"]) for row in org_rows}))
    features = _series(days.values("feature", "day").annotate(total=cost_sum()), "feature", "day")
    for feature in _ranked(features)[:TOP_SCOPES]:
        if feature:
            scopes.append(("feature", feature, features[feature]))
    per_customer = customers.filter(dimension="").values("customer_id", "start")
    by_customer = _series(per_customer.annotate(total=cost_sum()), "customer_id", "start")
    for customer in _ranked(by_customer)[:TOP_SCOPES]:
        if customer:
            scopes.append(("customer", customer, by_customer[customer]))

    channels = list(
        AlertChannel.objects.filter(organization=organization, is_active=True, is_default=True)
    )
    fired = 0
    for kind, value, series in scopes:
        spend_today = series.get(today, Decimal(0))
        baseline = is_anomaly(
            spend_today, [series.get(day, Decimal(0)) for day in previous_days], floor=floor
        )
        if baseline is None:
            continue
        data = _anomaly_data(organization, kind, value, spend_today, baseline, today)
        event = alert_event_fire(
            organization=organization,
            kind=AlertEvent.Kind.ANOMALY,
            data=data,
            channels=channels,
            spend=spend_today,
            dedup_key=f"anomaly:{kind}:{value}:{today.isoformat()}",
        )
        fired += event is not None
    return fired


def _ranked(series: dict[Any, dict[date, Decimal]]) -> list[Any]:
    return sorted(series, key=lambda name: (-sum(series[name].values()), str(name)))


def _anomaly_data(organization, kind, value, spend_today, baseline, today) -> dict[str, Any]:
    models = DailyModelRollup.objects.filter(organization=organization, day=today)
    customers = CustomerRollup.objects.filter(organization=organization, span=Span.DAY, start=today)
    if kind == "feature":
        models = models.filter(feature=value)
        customers = customers.filter(dimension="feature", value=value)
    elif kind == "customer":
        customers = customers.filter(customer_id=value)
    else:
        customers = customers.filter(dimension="")
    top = {"model": _top(models, "model", today), "feature": _top(models, "feature", today)}
    if kind == "customer":
        top["model"] = _top(customers.filter(dimension="model"), "value", today)
        top["feature"] = _top(customers.filter(dimension="feature"), "value", today)
    else:
        top["customer"] = _top(customers, "customer_id", today)
    label = "the whole organization" if kind == "organization" else f"{kind} {value}"
    return {
        "scope": kind,
        "scope_value": value,
        "scope_label": label,
        "day": today.isoformat(),
        "today": format(spend_today, "f"),
        "baseline": format(baseline, "f"),
        "ratio": format((spend_today / baseline).quantize(Decimal("0.1")), "f"),
        "top": top,
        "url": public_url("/"),
    }


def anomalies_detect_all_orgs(*, now: datetime | None = None) -> int:
    fired = 0
    for organization in Organization.objects.all():
        try:
            fired += anomalies_detect(organization=organization, now=now)
        except Exception:
            logger.exception("anomaly detection failed for organization %s", organization.pk)
    return fired
