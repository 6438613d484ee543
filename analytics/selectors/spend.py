"""What did we spend: totals, change, daily series, breakdowns, forecast, peaks, unpriced.

All of these read rollups only (never raw events), always filtered by the
organization: the smallest table that holds the answer (`rollup_rows`).
Days are local days of the organization's zone (analytics.periods).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import F, Q, Sum
from django.db.models.functions import ExtractHour, ExtractIsoWeekDay
from django.utils import timezone

from analytics.models import DailyCoarseRollup, DailyModelRollup
from analytics.params import UsageFilters
from analytics.periods import Period, local_midnight_utc, org_today, org_zone, period_preset
from analytics.selectors._common import (
    ZERO,
    Totals,
    change_ratio,
    cost_sum,
    money,
    rollup_rows,
    totals_from_row,
)
from analytics.selectors.ranking import spend_ranking

BREAKDOWN_ORDERS = {
    "cost": ("-t_cost", "key"),
    "calls": ("-t_calls", "key"),
    "name": ("key",),
}


def spend_totals(*, organization, period: Period, filters: UsageFilters | None = None) -> Totals:
    """Sums over the period (org-local days), from rollups."""
    rows = rollup_rows(organization=organization, period=period, filters=filters)
    return totals_from_row(rows.qs.aggregate(**rows.annotations()))


@dataclass(slots=True)
class SpendChange:
    period: Period
    current: Totals
    previous: Totals

    @property
    def change(self) -> Decimal | None:
        """Cost change vs the previous equal period as a ratio (0.25 = +25 %)."""
        return change_ratio(self.current.cost, self.previous.cost)


def spend_summary(
    *, organization, period: Period, filters: UsageFilters | None = None
) -> SpendChange:
    """Totals for the period and for the equal-length period just before it."""
    return SpendChange(
        period=period,
        current=spend_totals(organization=organization, period=period, filters=filters),
        previous=spend_totals(organization=organization, period=period.previous(), filters=filters),
    )


def spend_breakdown(
    *,
    organization,
    period: Period,
    by: str,
    filters: UsageFilters | None = None,
    order: str = "cost",
    limit: int | None = None,
    offset: int = 0,
    search: str = "",
) -> list[Totals]:
    """Totals per value of one dimension (`DIMENSIONS`), biggest spend first by default.

    `key` of each row is the dimension's value ("" = untagged; key: the key id, 0 = none).
    """
    if limit is not None:
        return spend_ranking(
            organization=organization,
            period=period,
            by=by,
            filters=filters,
            order=order,
            limit=limit,
            offset=offset,
            search=search,
            count=False,
        ).rows
    rows = rollup_rows(organization=organization, period=period, filters=filters, by=by)
    column = rows.column(by)
    qs = rows.qs.filter(**{f"{column}__icontains": search}) if search else rows.qs
    grouped = qs.values(key=F(column)).annotate(**rows.annotations())
    grouped = grouped.order_by(*BREAKDOWN_ORDERS[order])
    return [totals_from_row(row, key=row["key"]) for row in grouped[offset:]]


def spend_breakdown_count(
    *, organization, period: Period, by: str, filters: UsageFilters | None = None, search: str = ""
) -> int:
    """How many distinct values `spend_breakdown` would list (for pagination)."""
    rows = rollup_rows(organization=organization, period=period, filters=filters, by=by)
    column = rows.column(by)
    qs = rows.qs.filter(**{f"{column}__icontains": search}) if search else rows.qs
    return qs.values(column).distinct().count()


@dataclass(slots=True)
class SpendCard:
    preset: str  # analytics.periods.PRESETS key
    period: Period
    cost: Decimal
    calls: int
    previous_cost: Decimal

    @property
    def change(self) -> Decimal | None:
        return change_ratio(self.cost, self.previous_cost)


CARD_PRESETS = ("today", "7d", "30d", "month")


def spend_cards(*, organization, now: datetime | None = None) -> list[SpendCard]:
    """Spend today / last 7 days / last 30 days / this month, each with the equal
    period before it, in ONE scan of the rollups (conditional sums)."""
    periods = [period_preset(organization, preset, now=now) for preset in CARD_PRESETS]
    windows = [(p, p.previous()) for p in periods]
    span = Period(
        min(prev.start for _, prev in windows), max(cur.end for cur, _ in windows), periods[0].zone
    )
    rows = rollup_rows(organization=organization, period=span)
    daily = rows.qs.model in (DailyCoarseRollup, DailyModelRollup)

    def within(p: Period) -> Q:
        if daily:
            return Q(day__gte=p.start, day__lte=p.end)
        return Q(hour__gte=p.start_utc, hour__lt=p.end_utc)

    aggregates = {}
    for n, (cur, prev) in enumerate(windows):
        aggregates[f"c{n}"] = cost_sum(where=within(cur))
        aggregates[f"n{n}"] = Sum("calls", filter=within(cur))
        aggregates[f"p{n}"] = cost_sum(where=within(prev))
    row = rows.qs.aggregate(**aggregates)
    return [
        SpendCard(
            preset=preset,
            period=periods[n],
            cost=money(row[f"c{n}"]),
            calls=row[f"n{n}"] or 0,
            previous_cost=money(row[f"p{n}"]),
        )
        for n, preset in enumerate(CARD_PRESETS)
    ]


@dataclass(slots=True)
class DailySeries:
    """Zero-filled local days; `series` splits cost per day by a dimension (top N + other)."""

    period: Period
    days: list[Totals]
    by: str | None = None
    series: dict[str, list[Decimal]] = field(default_factory=dict)


OTHER = "(other)"


def spend_daily(
    *,
    organization,
    period: Period,
    filters: UsageFilters | None = None,
    by: str | None = None,
    top: int = 8,
) -> DailySeries:
    """One row per local day of the period, zero-filled, DST-safe.

    Rollup hours are grouped by the local date their hour starts on
    (`TruncDate` in the org zone, done in SQL). With `by`, the `top` values by
    cost get their own series and the rest are summed into "(other)".
    """
    totals = rollup_rows(organization=organization, period=period, filters=filters, daily=True)
    grouped = totals.qs.values(d=totals.day).annotate(**totals.annotations()).order_by("d")
    by_day = {row["d"]: totals_from_row(row, key=row["d"]) for row in grouped}
    days = [by_day.get(d) or Totals(key=d) for d in period.dates()]
    result = DailySeries(period=period, days=days, by=by)
    if by is None:
        return result

    per_key = spend_daily_split(organization=organization, period=period, by=by, filters=filters)
    index = period.dates()
    ranked = sorted(per_key, key=lambda k: (-sum(per_key[k]), k))
    for key in ranked[:top]:
        result.series[key] = per_key[key]
    if len(ranked) > top:
        other = [ZERO] * len(index)
        for key in ranked[top:]:
            other = [a + b for a, b in zip(other, per_key[key], strict=True)]
        result.series[OTHER] = other
    return result


def spend_daily_split(
    *,
    organization,
    period: Period,
    by: str,
    filters: UsageFilters | None = None,
    keys: list | None = None,
) -> dict[str, list[Decimal]]:
    """Cost per local day of the period (zero-filled) for each value of `by`
    that spent in it, keyed by the value as text; `keys`: those values only."""
    rows = rollup_rows(organization=organization, period=period, filters=filters, by=by, daily=True)
    column = rows.column(by)
    qs = rows.qs if keys is None else rows.qs.filter(**{f"{column}__in": keys})
    split = qs.values(d=rows.day, k=F(column)).annotate(c=cost_sum()).order_by()
    index = {d: n for n, d in enumerate(period.dates())}
    per_key: dict[str, list[Decimal]] = {}
    for row in split:
        if row["d"] not in index:
            continue
        values = per_key.setdefault(str(row["k"]), [ZERO] * len(index))
        values[index[row["d"]]] += money(row["c"])
    return per_key


@dataclass(slots=True)
class Forecast:
    """Spend of a period (the month, or a budget's day/week/month) at its end,
    at the current run rate."""

    month_start: date  # the period's first local day (the month, on the overview)
    month_end: date  # its last
    month_to_date: Decimal  # spent in it so far
    daily_average: Decimal
    basis_days: int
    days_left: Decimal
    projected: Decimal


def spend_forecast(
    *,
    organization,
    basis_days: int = 7,
    now: datetime | None = None,
    filters: UsageFilters | None = None,
    period: Period | None = None,
) -> Forecast:
    """Month-end forecast: month-to-date + (average daily spend over the last
    `basis_days` complete local days) × the days left in the month (today's
    remaining hours counted as a fraction of a day). `filters`: of one
    customer, feature, … only (the customer page's forecast); `period`:
    another period containing today than the month (a budget's day or week),
    forecast by the same rule to its end."""
    now = now or timezone.now()
    zone = org_zone(organization)
    if period is None:
        period = forecast_month(organization=organization, now=now)
    to_date, basis = forecast_periods(
        organization=organization, period=period, basis_days=basis_days, now=now
    )
    spent = spend_totals(organization=organization, period=to_date, filters=filters).cost
    basis_cost = spend_totals(organization=organization, period=basis, filters=filters).cost
    average = money(basis_cost / basis_days)
    seconds_left = (local_midnight_utc(period.end + timedelta(days=1), zone) - now).total_seconds()
    days_left = Decimal(max(0.0, seconds_left) / 86400).quantize(Decimal("0.01"))
    return Forecast(
        month_start=period.start,
        month_end=period.end,
        month_to_date=spent,
        daily_average=average,
        basis_days=basis_days,
        days_left=days_left,
        projected=money(spent + average * days_left),
    )


def forecast_month(*, organization, now: datetime | None = None) -> Period:
    """The month `spend_forecast` projects by default: today's, whole."""
    today = org_today(organization, now=now)
    last = today.replace(day=calendar.monthrange(today.year, today.month)[1])
    return Period(today.replace(day=1), last, org_zone(organization))


def forecast_periods(
    *, organization, period: Period | None = None, basis_days: int = 7, now: datetime | None = None
) -> tuple[Period, Period]:
    """What `spend_forecast` sums: `period` (default: the month) to today, and
    the `basis_days` complete local days before today."""
    if period is None:
        period = forecast_month(organization=organization, now=now)
    today = org_today(organization, now=now)
    zone = org_zone(organization)
    to_date = Period(period.start, today, zone)
    basis = Period(today - timedelta(days=basis_days), today - timedelta(days=1), zone)
    return to_date, basis


@dataclass(slots=True)
class Peaks:
    """calls[weekday 0=Mon..6][hour 0..23] in the org zone, plus the busiest cell."""

    calls: list[list[int]]
    cost: list[list[Decimal]]
    max_calls: int


def usage_peaks(*, organization, period: Period, filters: UsageFilters | None = None) -> Peaks:
    """Calls and cost per (local weekday, local hour of day) over the period."""
    zone = org_zone(organization)
    hours = rollup_rows(organization=organization, period=period, filters=filters, hourly=True)
    rows = (
        hours.qs.values(
            weekday=ExtractIsoWeekDay(hours.instant, tzinfo=zone),
            hod=ExtractHour(hours.instant, tzinfo=zone),
        )
        .annotate(n=hours.calls(), c=cost_sum())
        .order_by()
    )
    calls = [[0] * 24 for _ in range(7)]
    cost = [[ZERO] * 24 for _ in range(7)]
    for row in rows:
        calls[row["weekday"] - 1][row["hod"]] += row["n"] or 0
        cost[row["weekday"] - 1][row["hod"]] += money(row["c"])
    return Peaks(calls=calls, cost=cost, max_calls=max(max(r) for r in calls))


@dataclass(slots=True)
class Unpriced:
    calls: int
    models: list[tuple[str, int]]  # (model, unpriced calls), most first


def unpriced_summary(*, organization, period: Period) -> Unpriced:
    """Calls recorded without a price in the period, per model (for the banner)."""
    rows = (
        rollup_rows(organization=organization, period=period)
        .qs.filter(unpriced_calls__gt=0)
        .values("model")
        .annotate(n=Sum("unpriced_calls"))
        .order_by("-n", "model")
    )
    models = [(row["model"], row["n"]) for row in rows]
    return Unpriced(calls=sum(n for _, n in models), models=models)
