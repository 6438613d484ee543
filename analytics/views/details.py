"""Detail pages: one model / customer / feature / key, one request, traces."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from django.shortcuts import render

from analytics import selectors
from analytics.params import ParamError, untagged_value
from analytics.sorting import parse_sort
from analytics.views.common import (
    bad_request,
    export_query,
    filter_bar_context,
    page_filters,
    page_period,
    range_context,
    spend_page,
    trend_chart,
)
from analytics.views.margin import customer_margin_context
from pricing.engine import applied_price

TITLES = {"model": "Model", "customer": "Customer", "feature": "Feature", "key": "API key"}
LIST_URLS = {"model": "models", "customer": "customers", "feature": "features", "key": "keys"}


FILTER_NAMES = {"customer": "customer_id", "key": "key_id"}  # the rest are their own name


def _detail(request, by: str, value):
    own = FILTER_NAMES.get(by, by)
    try:
        period = page_period(request)
        filters = replace(page_filters(request), **{own: value})
    except ParamError as error:
        return bad_request(request, error)
    detail = selectors.dimension_detail(
        organization=request.organization, by=by, value=value, period=period, filters=filters
    )
    context = {
        **range_context(request, period),
        **filter_bar_context(request, period, filters, fixed=(own,)),
        "detail": detail,
        "title": TITLES[by],
        "list_url": LIST_URLS[by],
        "trend": trend_chart(detail.daily),
        # "All calls →": the requests log of what this page shows (filters and dates).
        "requests_query": export_query(period, filters),
    }
    if by == "customer":  # revenue, margin and the monthly P&L (issue 13)
        context.update(customer_margin_context(request, period, value))
    return render(request, "analytics/detail.html", context)


@spend_page
def model_detail(request, value: str):
    return _detail(request, "model", value)


@spend_page
def customer_detail(request, value: str):
    return _detail(request, "customer", untagged_value(value))


@spend_page
def feature_detail(request, value: str):
    return _detail(request, "feature", untagged_value(value))


@spend_page
def key_detail(request, value: int):
    return _detail(request, "key", value)


@spend_page
def request_detail(request, request_id: str):
    record = selectors.usage_event_get_for_org(
        organization=request.organization, request_id=request_id
    )
    # The price rows the engine applies to this call now (list or override, tier).
    price = applied_price(
        organization=request.organization,
        provider=record["provider"],
        model=record["model"],
        input_tokens=record["input_tokens"],
        at=record["created_at"],
    )
    return render(request, "analytics/request_detail.html", {"record": record, "price": price})


# The traces table's columns and the direction a first click sorts them in.
TRACE_COLUMNS = {
    "trace": False,
    "calls": True,
    "tokens": True,
    "started": True,
    "duration": True,
    "cost": True,
}


@spend_page
def traces(request):
    """The period's most expensive traces, searchable by id prefix (`q`) and
    narrowed by the filter bar (customer, feature, …), sortable by every column."""
    try:
        period = page_period(request)
        sort = parse_sort(request.GET, TRACE_COLUMNS, default="-cost")
        filters = page_filters(request)
    except ParamError as error:
        return bad_request(request, error)
    prefix = (request.GET.get("q") or "").strip()
    rows = selectors.traces_list(
        organization=request.organization,
        period=period,
        filters=filters,
        prefix=prefix,
        order=sort.column,
        descending=sort.descending,
    )
    context = {
        **range_context(request, period),
        **filter_bar_context(request, period, filters),
        "traces": rows,
        "sort": sort,
        "columns": TRACE_COLUMNS,
        "search": prefix,
    }
    return render(request, "analytics/traces.html", context)


@spend_page
def trace_detail(request, trace_id: str):
    trace = selectors.trace_detail(organization=request.organization, trace_id=trace_id)
    context = {"trace": trace, "timeline": trace_timeline(trace.records)}
    return render(request, "analytics/trace_detail.html", context)


def trace_timeline(records: list[dict]) -> list[dict]:
    """Each step of a trace as a bar on one time axis: where it starts and how long
    it ran, as percentages of the whole trace (first start to last end)."""
    if not records:
        return []
    start = min(r["created_at"] for r in records)
    ends = [r["created_at"] + timedelta(milliseconds=r["latency_ms"] or 0) for r in records]
    span_ms = max((max(ends) - start) / timedelta(milliseconds=1), 1)
    steps = []
    for record in records:
        offset_ms = (record["created_at"] - start) / timedelta(milliseconds=1)
        steps.append(
            {
                "record": record,
                "offset_ms": round(offset_ms),
                "left": round(100 * offset_ms / span_ms, 2),
                # at least a sliver, so a 0 ms step is still seen
                "width": max(round(100 * (record["latency_ms"] or 0) / span_ms, 2), 0.5),
            }
        )
    return steps
