"""The requests log: every call, newest first, filtered, keyset-paginated."""

from __future__ import annotations

from django.shortcuts import render

from analytics import selectors
from analytics.models import Status
from analytics.params import FILTER_PARAMS, ParamError, parse_filters
from analytics.periods import Period
from analytics.selectors.events import usage_events_sorted_page
from analytics.sorting import Sort, parse_sort
from analytics.views.common import bad_request, page_period, range_context, spend_page

PER_PAGE = 50
SUGGESTIONS = 200
# The table's columns and the direction a first click sorts them in.
COLUMNS = {
    "time": True,
    "model": False,
    "customer": False,
    "feature": False,
    "status": False,
    "tokens": True,
    "latency": True,
    "cost": True,
}


def _records(org, period: Period, filters, sort: Sort, cursor: str | None):
    """A page newest first (the live, API-shaped default), or in a column's order."""
    if sort.param == "-time":
        return selectors.usage_events_page(
            organization=org, period=period, filters=filters, limit=PER_PAGE, cursor=cursor
        )
    return usage_events_sorted_page(
        organization=org,
        period=period,
        filters=filters,
        order=sort.column,
        descending=sort.descending,
        limit=PER_PAGE,
        cursor=cursor,
    )


def _values(org, period, by: str) -> list[str]:
    rows = selectors.spend_breakdown(
        organization=org, period=period, by=by, order="name", limit=SUGGESTIONS
    )
    return [row.key for row in rows if row.key]


def export_query(request, period) -> str:
    """The export of exactly what is on screen: the page's filters and its date
    range spelled out (a preset or the default range included), never all time."""
    params = request.GET.copy()
    for name in ("cursor", "sort", "range", "start_date", "end_date"):
        params.pop(name, None)
    params["start_date"] = period.start.isoformat()
    params["end_date"] = period.end.isoformat()
    return params.urlencode()


@spend_page
def requests_log(request):
    org = request.organization
    try:
        period = page_period(request)
        filters = parse_filters(request.GET, allowed=FILTER_PARAMS)
        sort = parse_sort(request.GET, COLUMNS, default="-time")
        page = _records(org, period, filters, sort, request.GET.get("cursor") or None)
    except ParamError as error:
        return bad_request(request, error)
    context = {
        **range_context(request, period),
        "records": page.records,
        "next_cursor": page.next_cursor,
        "is_first_page": not request.GET.get("cursor"),
        "filters": filters,
        "statuses": Status.values,
        "models": [
            r.key
            for r in selectors.spend_breakdown(
                organization=org, period=period, by="model", order="name", limit=200
            )
        ],
        "environments": [
            r.key
            for r in selectors.spend_breakdown(
                organization=org, period=period, by="environment", order="name", limit=50
            )
        ],
        "export_query": export_query(request, period),
        "sort": sort,
        "columns": COLUMNS,
        # autocomplete from the organization's own values (first 200 by name)
        "customer_values": _values(org, period, "customer"),
        "feature_values": _values(org, period, "feature"),
        "live_latest": selectors.latest_call_marker(organization=org),
    }
    return render(request, "analytics/requests.html", context)
