"""Models, Customers and Features tables: every column sorts (?sort=col / -col),
searchable, paginated, from rollups; customers and features add a daily
sparkline and the change against the previous equal period."""

from __future__ import annotations

from typing import Any

from django.shortcuts import render

from analytics import selectors
from analytics.params import ParamError, UsageFilters, parse_choice, parse_int
from analytics.periods import Period
from analytics.selectors import Totals
from analytics.selectors._common import change_ratio
from analytics.selectors.ranking import Ranking
from analytics.selectors.revenue import MARGIN_SORTS, PROFIT_FILTERS
from analytics.selectors.tables import page_trend, table_ranking
from analytics.sorting import Sort, parse_sort, sort_rows, totals_sort_value
from analytics.views.common import (
    bad_request,
    filter_bar_context,
    page_filters,
    page_period,
    range_context,
    spend_page,
)
from analytics.views.margin import customers_by_margin, margin_context

PER_PAGE = 50
# Each table's sortable columns and the direction a first click sorts them in
# (True: biggest first). Share sorts as cost.
COLUMNS = {"name": False, "calls": True, "tokens": True, "avg_cost": True, "cost": True}
TREND_COLUMNS = {**COLUMNS, "change": True}
TABLES: dict[str, dict[str, Any]] = {
    "model": {"title": "Models", "noun": "model", "url_name": "models", "columns": COLUMNS},
    "customer": {
        "title": "Customers",
        "noun": "customer",
        "url_name": "customers",
        "columns": {**TREND_COLUMNS, "revenue": True, "margin": False, "margin_percent": False},
    },
    "feature": {
        "title": "Features",
        "noun": "feature",
        "url_name": "features",
        "columns": TREND_COLUMNS,
    },
    "key": {"title": "Spend by API key", "noun": "key", "url_name": "keys", "columns": COLUMNS},
}


def _key_ranking(
    request, period: Period, filters: UsageFilters, sort: Sort, search: str, page: int
) -> Ranking:
    """Keys by any column, sorted in Python: an organization has a handful of
    keys, and their names (not their ids) are what the name column sorts by."""
    labels = selectors.api_key_labels(organization=request.organization)
    rows = selectors.spend_breakdown(
        organization=request.organization, period=period, by="key", filters=filters
    )
    if search:
        rows = [row for row in rows if search.lower() in labels.get(row.key, "").lower()]
    ranked = sort_rows(
        rows,
        value=lambda row: totals_sort_value(row, sort.column, labels.get(row.key, "")),
        key=lambda row: row.key,
        descending=sort.descending,
    )
    offset = (page - 1) * PER_PAGE
    return Ranking(rows=ranked[offset : offset + PER_PAGE], count=len(ranked))


def _ranking(
    request, by: str, period: Period, filters: UsageFilters, sort: Sort, search: str, page: int
):
    """One page of the table's values in the asked order."""
    if by == "key":
        return _key_ranking(request, period, filters, sort, search, page)
    return table_ranking(
        organization=request.organization,
        period=period,
        by=by,
        order=sort.column,
        filters=filters,
        descending=sort.descending,
        search=search,
        limit=PER_PAGE,
        offset=(page - 1) * PER_PAGE,
    )


def trend_context(
    request, by: str, period: Period, rows: list[Totals], filters: UsageFilters
) -> dict[str, Any]:
    """Each row's sparkline (daily cost) and change against the previous period."""
    trend = page_trend(
        organization=request.organization, period=period, by=by, rows=rows, filters=filters
    )
    return {
        "sparklines": trend.sparklines,
        "changes": {row.key: change_ratio(row.cost, trend.previous[row.key]) for row in rows},
    }


def _table(request, by: str):
    org = request.organization
    table = TABLES[by]
    try:
        period = page_period(request)
        filters = page_filters(request)
        sort = parse_sort(request.GET, table["columns"], default="-cost")
        page = parse_int(request.GET, "page", default=1, minimum=1, maximum=100_000)
        profit = None
        if by == "customer" and request.GET.get("profit"):
            profit = parse_choice(request.GET, "profit", PROFIT_FILTERS, default="")
    except ParamError as error:
        return bad_request(request, error)
    search = (request.GET.get("q") or "").strip()
    if by == "customer" and (sort.column in MARGIN_SORTS or profit):
        # a full ranking by margin (analytics.views.margin)
        context = customers_by_margin(request, period, filters, sort, profit, search, page)
    else:
        ranking = _ranking(request, by, period, filters, sort, search, page)
        pages = max(1, -(-ranking.count // PER_PAGE))
        if page > pages:  # past the end: show the last page
            page = pages
            ranking = _ranking(request, by, period, filters, sort, search, page)
        context = {"rows": ranking.rows, "count": ranking.count, "page": page, "pages": pages}
        if by == "key":
            context["key_labels"] = selectors.api_key_labels(organization=org)
        if by == "customer":  # revenue and margin of the rows shown (issue 13)
            context.update(margin_context(request, period, ranking.rows))
    rows = context["rows"]
    context.update(
        {
            **range_context(request, period),
            **filter_bar_context(request, period, filters),
            **table,
            "by": by,
            "total": selectors.spend_totals(organization=org, period=period, filters=filters),
            "sort": sort,
            "search": search,
        }
    )
    if "change" in table["columns"]:
        context.update(trend_context(request, by, period, rows, filters))
    return render(request, "analytics/table.html", context)


@spend_page
def models_table(request):
    return _table(request, "model")


@spend_page
def customers_table(request):
    return _table(request, "customer")


@spend_page
def features_table(request):
    return _table(request, "feature")


@spend_page
def keys_table(request):
    return _table(request, "key")
