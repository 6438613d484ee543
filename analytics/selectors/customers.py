"""Spend per customer over a period, from the per-customer daily rollup.

Grouping the hourly rollup by customer scans rows in proportion to the long
tail of customers (nearly one per call); DailyCustomerRollup has one row per
customer per UTC day whatever the volume. A period (the org's local days, as
UTC bounds) is read as whole UTC days from the daily table plus its partial
first and last UTC day from HourlyRollup, with the same `hour >= start`
bounds as every other selector, so the answer is exactly the hourly one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, QuerySet, Sum

from analytics.models import DailyCustomerRollup, HourlyRollup
from analytics.periods import Period
from analytics.selectors._common import (
    TOTAL_FIELDS,
    Totals,
    cost_sum,
    totals_annotations,
    totals_from_row,
)

CUSTOMER_ORDERS: dict[str, Callable[[Totals], Any]] = {
    "cost": lambda t: (-t.cost, t.key),
    "calls": lambda t: (-t.calls, t.key),
    "name": lambda t: t.key,
}


def _day_floor(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _split(period: Period) -> tuple[tuple[datetime, datetime] | None, list[tuple]]:
    """(whole UTC days [first, last) or None, the hourly ranges around them)."""
    start, end = period.start_utc, period.end_utc
    first = _day_floor(start)
    if first < start:
        first += timedelta(days=1)
    last = _day_floor(end)
    if first >= last:
        return None, [(start, end)]
    return (first, last), [(start, first), (last, end)]


def _daily_rows(organization, days: tuple[datetime, datetime], search: str) -> QuerySet:
    qs = DailyCustomerRollup.objects.filter(
        organization=organization, day__gte=days[0].date(), day__lt=days[1].date()
    )
    return qs.filter(customer_id__icontains=search) if search else qs


def _hourly_rows(organization, start: datetime, end: datetime, search: str) -> QuerySet:
    qs = HourlyRollup.objects.filter(organization=organization, hour__gte=start, hour__lt=end)
    return qs.filter(customer_id__icontains=search) if search else qs


def _daily_annotations() -> dict[str, Any]:
    out: dict[str, Any] = {f"t_{name}": Sum(name) for name in TOTAL_FIELDS}
    out["t_error_calls"] = Sum("error_calls")  # the daily table counts them itself
    out["t_cost"] = cost_sum()
    return out


def customer_totals(*, organization, period: Period, search: str = "") -> list[Totals]:
    """Totals per customer ("" = untagged) over the period, unordered."""
    days, hourly = _split(period)
    by_customer: dict[str, Totals] = {}

    def merge(rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            totals = totals_from_row(row, key=row["key"])
            if totals.key in by_customer:
                by_customer[totals.key].add(totals)
            else:
                by_customer[totals.key] = totals

    if days is not None:
        daily = _daily_rows(organization, days, search)
        merge(daily.values(key=F("customer_id")).annotate(**_daily_annotations()))
    for start, end in hourly:
        if start < end:
            edge = _hourly_rows(organization, start, end, search)
            merge(edge.values(key=F("customer_id")).annotate(**totals_annotations()))
    return list(by_customer.values())


def customer_count(*, organization, period: Period, search: str = "") -> int:
    """How many distinct customers called in the period."""
    days, hourly = _split(period)
    seen: set[str] = set()
    if days is not None:
        seen.update(
            _daily_rows(organization, days, search).values_list("customer_id", flat=True).distinct()
        )
    for start, end in hourly:
        if start < end:
            seen.update(
                _hourly_rows(organization, start, end, search)
                .values_list("customer_id", flat=True)
                .distinct()
            )
    return len(seen)
