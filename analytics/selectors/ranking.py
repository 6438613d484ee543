"""Rankings: one page of a dimension's values in any table order, and how many
there are, without summing every counter of every value (analytics.selectors.top
for the customers' fast paths)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import (
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    FloatField,
    QuerySet,
    Sum,
    Window,
)
from django.db.models.functions import Cast, NullIf

from analytics.params import UsageFilters
from analytics.periods import Period
from analytics.selectors._common import Rows, Totals, cost_sum, rollup_rows, totals_from_row
from analytics.selectors.top import customer_count, customers_by_name, top_customers_by_cost

# Up to this rank, customers by cost come from the threshold algorithm.
TOP_MAX = 500


@dataclass(slots=True)
class Ranking:
    rows: list[Totals]  # one page
    count: int  # values in the whole ranking


# What each order ranks by (phase one of `spend_ranking`), and whether it
# reads biggest first unless asked otherwise (names read A to Z).
RANK_ORDERS = {"cost": True, "calls": True, "tokens": True, "avg_cost": True, "name": False}


def _rank_expression(order: str, rows: Rows) -> Any:
    """The one aggregate `order` ranks by ("name": calls, only to group by)."""
    if order == "cost":
        return cost_sum()
    if order == "tokens":
        return Sum(F("input_tokens") + F("output_tokens"))
    if order == "avg_cost":
        calls = NullIf(rows.calls(), 0)
        if connection.vendor == "sqlite":  # scaled integers: divide as floats
            return Cast(cost_sum(), FloatField()) / Cast(calls, FloatField())
        return ExpressionWrapper(cost_sum() / calls, output_field=DecimalField())
    return rows.calls()


def spend_ranking(
    *,
    organization,
    period: Period,
    by: str,
    filters: UsageFilters | None = None,
    order: str = "cost",
    descending: bool | None = None,
    limit: int,
    offset: int = 0,
    search: str = "",
    count: bool = True,
) -> Ranking:
    """One page of `spend_breakdown` and how many values there are in all
    (0 unless `count`). `order` is one of RANK_ORDERS, in its own direction
    unless `descending` says; ties go by value, ascending.

    Two queries: rank every value by the one sum the order needs (with the
    number of values as a window count over the same scan), then full totals
    for the page's values only. Summing ten counters for a page instead of for
    thousands of customers is most of the time a ranking takes. Customers by
    cost (first pages, biggest first) and by name, overall or of one model or
    feature, skip the full ranking (analytics.selectors.top).
    """
    if descending is None:
        descending = RANK_ORDERS[order]
    rows = rollup_rows(organization=organization, period=period, filters=filters, by=by)
    column = rows.column(by)
    qs = rows.qs.filter(**{f"{column}__icontains": search}) if search else rows.qs
    keys: list | None = None
    if (
        by == "customer"
        and (order, descending) in (("cost", True), ("name", False), ("name", True))
        and not search
        and rows.scope is not None
    ):
        # all customers (dimension ""), or the customers of one model,
        # feature or x-property-* pair
        dimension, value = rows.scope
        scope = {"dimension": dimension, "value": value}
        if order == "name":
            keys = customers_by_name(
                organization=organization,
                period=period,
                offset=offset,
                limit=limit,
                descending=descending,
                **scope,
            )
        elif offset + limit <= TOP_MAX:
            top = top_customers_by_cost(
                organization=organization, period=period, k=offset + limit, **scope
            )
            keys = None if top is None else top[offset:]
        if keys is not None:
            total = (
                customer_count(organization=organization, period=period, **scope) if count else 0
            )
    if keys is None:
        keys, total = _ranked_keys(rows, qs, column, order, descending, limit=limit, offset=offset)
        if not keys and offset and count:
            total = qs.values(column).distinct().count()
    return Ranking(rows=page_totals(rows, qs, column, keys), count=total)


def page_totals(rows: Rows, qs: QuerySet, column: str, keys: list) -> list[Totals]:
    """Full totals of a page's values, in the page's order (phase two of a ranking)."""
    if not keys:
        return []
    totals = {
        row["key"]: totals_from_row(row, key=row["key"])
        for row in qs.filter(**{f"{column}__in": keys})
        .values(key=F(column))
        .annotate(**rows.annotations())
        .order_by()
    }
    return [totals[key] for key in keys]


def _ranked_keys(
    rows: Rows, qs, column: str, order: str, descending: bool, *, limit: int, offset: int
) -> tuple[list, int]:
    """One page of values ranked by the order's sum, and how many values there are."""
    ordering: tuple[str, ...]
    if order == "name":
        ordering = ("-key",) if descending else ("key",)
    else:
        ordering = ("-rank" if descending else "rank", "key")
    ranked = (
        qs.values(key=F(column))
        .annotate(rank=_rank_expression(order, rows))
        .annotate(n=Window(Count("*")))
        .order_by(*ordering)[offset : offset + limit]
    )
    page = [(row["key"], row["n"]) for row in ranked]
    return [key for key, _ in page], (page[0][1] if page else 0)
