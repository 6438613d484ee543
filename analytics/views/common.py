"""Shared parts of the spend pages: the period and filters of a request, chart data."""

from __future__ import annotations

from decimal import Decimal
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import QueryDict
from django.shortcuts import render
from django.utils import timezone

from accounts.decorators import organization_required
from analytics import selectors
from analytics.models import Status
from analytics.params import (
    ALL_FILTER_PARAMS,
    ParamError,
    UsageFilters,
    parse_filters,
    parse_period,
)
from analytics.periods import PRESETS, Period, org_zone
from analytics.selectors import DailySeries, FilterChoices

PAGE_DEFAULT_RANGE = "30d"


def spend_page(view):
    """A logged-in page of an organization, with times shown in the org's zone."""

    @organization_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        with timezone.override(org_zone(request.organization)):
            return view(request, *args, **kwargs)

    return wrapper


def page_period(request, *, default: str = PAGE_DEFAULT_RANGE) -> Period:
    """The page's date range: start_date/end_date, else ?range=, else the default."""
    return parse_period(request.organization, request.GET, default=default)


def range_context(request, period: Period) -> dict[str, Any]:
    """What partials/date_range.html needs."""
    custom = bool(request.GET.get("start_date") or request.GET.get("end_date"))
    return {
        "period": period,
        "presets": PRESETS,
        "active_range": "custom" if custom else request.GET.get("range") or PAGE_DEFAULT_RANGE,
    }


def page_filters(request) -> UsageFilters:
    """The filter bar's filters from the page's query (the API's names, issue 12)."""
    return parse_filters(request.GET, allowed=ALL_FILTER_PARAMS)


FILTER_LABELS = {
    "customer_id": "Customer",
    "feature": "Feature",
    "model": "Model",
    "provider": "Provider",
    "status": "Status",
    "trace_id": "Trace",
    "environment": "Environment",
    "key_id": "Key",
    "property": "Property",
    "cost_min": "Cost ≥",
    "cost_max": "Cost ≤",
    "latency_min": "Latency ≥",
    "latency_max": "Latency ≤",
}
assert set(FILTER_LABELS) == set(ALL_FILTER_PARAMS)  # noqa: S101 (a label per filter)
# The bar's folded summary names what it offers.
FILTER_HINTS = {
    "customer_id": "customer",
    "feature": "feature",
    "model": "model",
    "key_id": "key",
    "status": "status",
    "property": "properties",
    "cost_min": "cost",
    "latency_min": "latency",
}
# How a chip spells a value with its unit (the URL keeps the bare number).
CHIP_VALUES = {
    "cost_min": "${}",
    "cost_max": "${}",
    "latency_min": "{} ms",
    "latency_max": "{} ms",
}


def filter_bar_context(
    request,
    period: Period,
    filters: UsageFilters,
    *,
    fixed: tuple[str, ...] = (),
    offered: tuple[str, ...] = ALL_FILTER_PARAMS,
    export_template: str = "partials/export_buttons.html",
) -> dict[str, Any]:
    """What partials/filter_bar.html needs. `filters` are those in force (a
    detail page's own dimension included); `fixed` names the ones the page
    sets itself, which the bar neither offers nor lists; `offered`, the only
    ones the page can answer (the matrix: customer and feature)."""
    choices = selectors.filter_choices(organization=request.organization, period=period)
    hidden = (*fixed, *(name for name in ALL_FILTER_PARAMS if name not in offered))
    return {
        "filters": filters,
        "filter_choices": choices,
        "filter_fixed": fixed,
        "filter_hidden": hidden,
        "filter_hint": ", ".join(FILTER_HINTS[name] for name in FILTER_HINTS if name not in hidden),
        "filter_export_template": export_template,
        "filter_chips": filter_chips(request, filters, choices, fixed=fixed),
        "filter_properties": [f"{name}:{value}" for name, value in filters.properties],
        "statuses": Status.values,
        "export_query": export_query(period, filters),
    }


def filter_chips(
    request, filters: UsageFilters, choices: FilterChoices, *, fixed: tuple[str, ...] = ()
) -> list[dict[str, str]]:
    """One chip per filter in force: its label, its value as people read it,
    and the page's URL without it."""
    chips = []
    for name, value in filters.as_query():
        if name in fixed:
            continue
        params = request.GET.copy()
        params.setlist(name, [v for v in params.getlist(name) if v.strip() != value])
        for paging in ("page", "cursor"):
            params.pop(paging, None)
        shown = CHIP_VALUES.get(name, "{}").format(value)
        if name == "key_id":
            shown = choices.keys.get(int(value), value)
        chips.append(
            {
                "name": name,
                "label": FILTER_LABELS[name],
                "value": shown,
                "remove": f"?{params.urlencode()}",
            }
        )
    return chips


def export_query(period: Period, filters: UsageFilters) -> str:
    """The export of exactly what is on screen: the filters in force and the
    date range spelled out (a preset or the default range included), never all time."""
    params = QueryDict(mutable=True)
    for name, value in filters.as_query():
        params.appendlist(name, value)
    params["start_date"] = period.start.isoformat()
    params["end_date"] = period.end.isoformat()
    return params.urlencode()


def bad_request(request, error: ParamError):
    """Pages answer a bad parameter with a 400 page that says what was wrong."""
    return render(request, "analytics/bad_request.html", {"message": str(error)}, status=400)


def base_url(request) -> str:
    return (settings.AISPENDTRACK_PUBLIC_URL or request.build_absolute_uri("/")).rstrip("/")


def _num(value: Decimal) -> float:
    # Charts only draw; every figure a person reads is rendered from Decimal.
    return float(value)


def trend_chart(daily: DailySeries, *, previous: DailySeries | None = None) -> dict[str, Any]:
    """Chart spec for static/js/charts.js: stacked daily bars (one series per value);
    with `previous`, the equal period before drawn as a line over the same days
    (day 1 over day 1), its dates in the tooltip."""
    labels = [day.key.isoformat() for day in daily.days]
    if daily.series:
        series = [
            {"label": key, "data": [_num(v) for v in values]}
            for key, values in daily.series.items()
        ]
    else:
        series = [{"label": "Spend", "data": [_num(day.cost) for day in daily.days]}]
    spec: dict[str, Any] = {"type": "stacked", "labels": labels, "series": series}
    if previous is not None:
        spec["overlay"] = {
            "label": "Previous period",
            "data": [_num(day.cost) for day in previous.days],
            "labels": [day.key.isoformat() for day in previous.days],
        }
    return spec


def calls_chart(daily: DailySeries) -> dict[str, Any]:
    """Calls per day, successes and errors stacked."""
    days = daily.days
    return {
        "type": "stacked",
        "unit": "calls",
        "labels": [day.key.isoformat() for day in days],
        "series": [
            {"label": "Succeeded", "data": [day.calls - day.error_calls for day in days]},
            {"label": "Failed", "data": [day.error_calls for day in days], "color": "#ef4444"},
        ],
    }


def pie_chart(rows, *, label=str) -> dict[str, Any]:
    return {
        "type": "pie",
        "labels": [label(row.key) for row in rows],
        "series": [{"label": "Spend", "data": [_num(row.cost) for row in rows]}],
    }
