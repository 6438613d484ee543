"""Margin on the customers pages: columns, filters, sorting by margin, the P&L chart."""

from __future__ import annotations

from typing import Any

from analytics.params import UsageFilters
from analytics.periods import Period
from analytics.selectors import Totals
from analytics.selectors.revenue import (
    customer_forecast,
    customer_margin,
    customer_margin_page,
    customer_pnl_monthly,
    margins_for,
    revenue_settings_get,
)
from analytics.sorting import Sort
from analytics.views.common import _num

PER_PAGE = 50


def margin_context(request, period: Period, rows: list[Totals]) -> dict[str, Any]:
    """What the customers table needs for its revenue, margin and margin % columns."""
    settings = revenue_settings_get(organization=request.organization)
    return {
        "margins": margins_for(organization=request.organization, period=period, rows=rows),
        "thin_percent": settings.thin_margin_percent,
        "profit": request.GET.get("profit") or "",
    }


def customers_by_margin(
    request,
    period: Period,
    filters: UsageFilters,
    sort: Sort,
    profit: str | None,
    search: str,
    page: int,
) -> dict[str, Any]:
    """The customers table sorted by margin / margin % / revenue, or filtered to
    unprofitable or thin customers (then sorted by any column): one full
    ranking with margins, then a page. The table's rows, margins and paging."""
    org = request.organization
    rows, count = customer_margin_page(
        organization=org,
        period=period,
        filters=filters,
        sort=sort.column,
        descending=sort.descending,
        profit=profit,
        search=search,
        limit=PER_PAGE,
        offset=(page - 1) * PER_PAGE,
    )
    settings = revenue_settings_get(organization=org)
    return {
        "rows": [row.totals for row in rows],
        "margins": {row.totals.key: row.margin for row in rows},
        "thin_percent": settings.thin_margin_percent,
        "profit": profit or "",
        "count": count,
        "page": page,
        "pages": max(1, -(-count // PER_PAGE)),
    }


def pnl_chart(request, customer_id: str) -> dict[str, Any]:
    """Chart spec for static/js/charts.js: monthly revenue and cost bars, margin line."""
    months = customer_pnl_monthly(organization=request.organization, customer_id=customer_id)
    return {
        "type": "pnl",
        "labels": [m.month.strftime("%b %Y") for m in months],
        "series": [
            {
                "label": "Revenue",
                "data": [None if m.revenue is None else _num(m.revenue) for m in months],
            },
            {"label": "AI cost", "data": [_num(m.cost) for m in months]},
            {
                "label": "Margin",
                "data": [None if m.margin is None else _num(m.margin) for m in months],
            },
        ],
    }


def customer_margin_context(request, period: Period, customer_id: str) -> dict[str, Any]:
    """The customer detail page's margin stats, P&L chart and run-rate forecast."""
    org = request.organization
    return {
        "margin": customer_margin(organization=org, period=period, customer_id=customer_id),
        "thin_percent": revenue_settings_get(organization=org).thin_margin_percent,
        "pnl": pnl_chart(request, customer_id),
        "customer_forecast": customer_forecast(organization=org, customer_id=customer_id),
    }
