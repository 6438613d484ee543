"""The requests log: every call, newest first, filtered, keyset-paginated."""

from __future__ import annotations

from django.shortcuts import render

from analytics import selectors
from analytics.params import ParamError
from analytics.periods import Period
from analytics.selectors.sorted_records import usage_events_sorted_page
from analytics.sorting import Sort, parse_sort
from analytics.views import common
from analytics.views.common import spend_page
from analytics.views.live_fragment import live_page, live_template

PER_PAGE = 50
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


@spend_page
@live_page
def requests_log(request):
    org = request.organization
    try:
        period = common.page_period(request)
        filters = common.page_filters(request)
        sort = parse_sort(request.GET, COLUMNS, default="-time")
        page = _records(org, period, filters, sort, request.GET.get("cursor") or None)
    except ParamError as error:
        return common.bad_request(request, error)
    context = {
        **common.range_context(request, period),
        **common.filter_bar_context(request, period, filters),
        "records": page.records,
        "next_cursor": page.next_cursor,
        "is_first_page": not request.GET.get("cursor"),
        "sort": sort,
        "columns": COLUMNS,
        "live_latest": selectors.live_marker(organization=org),
    }
    template = live_template(
        request, page="analytics/requests.html", fragment="analytics/_requests_live.html"
    )
    return render(request, template, context)
