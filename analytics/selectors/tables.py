"""What the customers and features tables add to a ranking: each row's change
against the previous period, its daily sparkline, and ranking by that change.

All from rollups (`rollup_rows`), for the rows of one page except the change
ranking, which needs every value's cost in both periods (two grouped sums).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, F

from analytics.intervals import period_spans
from analytics.models import CustomerRollup
from analytics.params import UsageFilters
from analytics.periods import Period, org_today
from analytics.selectors._common import (
    ZERO,
    Totals,
    cost_sum,
    customer_costs,
    money,
    rollup_rows,
    spans_q,
)
from analytics.selectors.ranking import RANK_ORDERS, Ranking, page_totals, spend_ranking
from analytics.selectors.spend import spend_daily_split
from analytics.sorting import sort_rows

# A change ranks above every ratio when nothing was spent before ("new").
NEW = Decimal("Infinity")


def change_value(current: Decimal, previous: Decimal) -> Decimal | None:
    """What the change column sorts by: the exact ratio (current - previous) /
    previous, NEW when only the current period spent, None when neither did."""
    if previous:
        return (current - previous) / previous
    return NEW if current else None


def costs_by_value(
    *,
    organization,
    period: Period,
    by: str,
    filters: UsageFilters | None = None,
    keys: list | None = None,
    search: str = "",
) -> dict:
    """Cost per value of `by` over the period (only values with calls in it);
    `keys`: those values only; `search`: values containing it."""
    if by == "customer" and keys is None and not search:
        found = customer_costs(organization=organization, periods=[period], filters=filters)
        if found is not None:
            return found[0]
    rows = rollup_rows(organization=organization, period=period, filters=filters, by=by)
    column = rows.column(by)
    qs = rows.qs
    if keys is not None:
        qs = qs.filter(**{f"{column}__in": keys})
    if search:
        qs = qs.filter(**{f"{column}__icontains": search})
    grouped = qs.values(key=F(column)).annotate(c=cost_sum()).order_by()
    return {row["key"]: money(row["c"]) for row in grouped}


def previous_costs(
    *,
    organization,
    period: Period,
    by: str,
    rows: list[Totals],
    filters: UsageFilters | None = None,
) -> dict:
    """The cost of each row's value over the equal period before (ZERO if none)."""
    if not rows:
        return {}
    keys = [row.key for row in rows]
    found = costs_by_value(
        organization=organization, period=period.previous(), by=by, filters=filters, keys=keys
    )
    return {key: found.get(key, ZERO) for key in keys}


def sparklines(
    *,
    organization,
    period: Period,
    by: str,
    rows: list[Totals],
    filters: UsageFilters | None = None,
) -> dict:
    """Each row's cost per local day of the period, zero-filled (one query)."""
    if not rows:
        return {}
    keys = [row.key for row in rows]
    split = spend_daily_split(
        organization=organization, period=period, by=by, filters=filters, keys=keys
    )
    zeros = [ZERO] * period.days
    return {key: split.get(str(key), zeros) for key in keys}


# Up to this many days, a page's sparklines and previous costs are one read
# of daily rows over both periods; longer, the previous period's cost is read
# from coarse intervals (its daily rows would outnumber them many times).
ONE_READ_DAYS = 92


@dataclass(slots=True)
class Trend:
    sparklines: dict  # value → its cost per local day of the period, zero-filled
    previous: dict  # value → its cost over the previous equal period (ZERO if none)


def page_trend(
    *,
    organization,
    period: Period,
    by: str,
    rows: list[Totals],
    filters: UsageFilters | None = None,
) -> Trend:
    """The sparkline and the previous period's cost of each row of a page:
    one query (daily rows of the page's values over both periods)."""
    if not rows:
        return Trend({}, {})
    scope = {"organization": organization, "by": by, "rows": rows, "filters": filters}
    if period.days > ONE_READ_DAYS:
        return Trend(sparklines(period=period, **scope), previous_costs(period=period, **scope))
    before = period.previous()
    keys = [row.key for row in rows]
    split = spend_daily_split(
        organization=organization,
        period=Period(before.start, period.end, period.zone),
        by=by,
        filters=filters,
        keys=keys,
    )
    zeros = [ZERO] * (before.days + period.days)
    trend = Trend({}, {})
    for key in keys:
        days = split.get(str(key), zeros)
        trend.previous[key] = sum(days[: before.days], ZERO)
        trend.sparklines[key] = days[before.days :]
    return trend


def _costs_now_and_before(
    *, organization, period: Period, by: str, filters: UsageFilters | None, search: str
) -> tuple[dict, dict]:
    """Cost per value of `by` in the period (values with calls in it) and in
    the previous equal period: one grouped read where CustomerRollup
    intervals answer both, else `costs_by_value` twice."""
    if by == "customer" and not search:
        found = customer_costs(
            organization=organization, periods=[period, period.previous()], filters=filters
        )
        if found is not None:
            return found[0], found[1]
    scope = {"organization": organization, "by": by, "filters": filters}
    now = rollup_rows(period=period, **scope)
    before = rollup_rows(period=period.previous(), **scope)
    if now.qs.model is not CustomerRollup or before.qs.model is not CustomerRollup:
        return (
            costs_by_value(period=period, search=search, **scope),
            costs_by_value(period=period.previous(), search=search, **scope),
        )
    today = org_today(organization)
    current = spans_q(period_spans(period, today=today))
    earlier = spans_q(period_spans(period.previous(), today=today))
    column = now.column(by)
    qs = now.qs | before.qs  # the same scope, either period's intervals
    if search:
        qs = qs.filter(**{f"{column}__icontains": search})
    grouped = (
        qs.values(key=F(column))
        .annotate(
            now=cost_sum(where=current),
            before=cost_sum(where=earlier),
            called=Count("pk", filter=current),
        )
        .order_by()
    )
    costs: dict = {}
    previous: dict = {}
    for row in grouped:
        if row["called"]:
            costs[row["key"]] = money(row["now"])
        if row["before"] is not None:
            previous[row["key"]] = money(row["before"])
    return costs, previous


def change_ranking(
    *,
    organization,
    period: Period,
    by: str,
    filters: UsageFilters | None = None,
    descending: bool = True,
    limit: int,
    offset: int = 0,
    search: str = "",
) -> Ranking:
    """One page of the values with calls in the period ranked by their cost's
    change against the previous equal period (biggest rise first unless not
    `descending`; "new" above every ratio; no spend either time last)."""
    current, previous = _costs_now_and_before(
        organization=organization, period=period, by=by, filters=filters, search=search
    )
    ranked = sort_rows(
        current,
        value=lambda key: change_value(current[key], previous.get(key, ZERO)),
        key=lambda key: key,
        descending=descending,
    )
    keys = ranked[offset : offset + limit]
    rows = rollup_rows(organization=organization, period=period, filters=filters, by=by)
    column = rows.column(by)
    qs = rows.qs.filter(**{f"{column}__icontains": search}) if search else rows.qs
    return Ranking(rows=page_totals(rows, qs, column, keys), count=len(current))


# Every order a breakdown table ranks by in the database: one sum
# (analytics.selectors.ranking.RANK_ORDERS) or the change against the
# previous period; each reads biggest first unless asked otherwise.
TABLE_ORDERS = {**RANK_ORDERS, "change": True}


def table_ranking(
    *,
    organization,
    period: Period,
    by: str,
    order: str,
    filters: UsageFilters | None = None,
    descending: bool | None = None,
    limit: int,
    offset: int = 0,
    search: str = "",
) -> Ranking:
    """One page of the values of `by` in any TABLE_ORDERS order and how many
    there are (the pages' tables and the list endpoints rank the same way)."""
    scope = {
        "organization": organization,
        "period": period,
        "by": by,
        "filters": filters,
        "descending": TABLE_ORDERS[order] if descending is None else descending,
        "search": search,
        "limit": limit,
        "offset": offset,
    }
    if order == "change":
        return change_ranking(**scope)
    return spend_ranking(order=order, **scope)
