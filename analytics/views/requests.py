"""The requests log: every call, newest first, filtered, keyset-paginated."""

from __future__ import annotations

from django.shortcuts import render

from analytics import selectors
from analytics.models import Status
from analytics.params import FILTER_PARAMS, ParamError, parse_filters
from analytics.views.common import bad_request, page_period, range_context, spend_page

PER_PAGE = 50


@spend_page
def requests_log(request):
    org = request.organization
    try:
        period = page_period(request)
        filters = parse_filters(request.GET, allowed=FILTER_PARAMS)
    except ParamError as error:
        return bad_request(request, error)
    try:
        page = selectors.usage_events_page(
            organization=org,
            period=period,
            filters=filters,
            limit=PER_PAGE,
            cursor=request.GET.get("cursor") or None,
        )
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
        "export_query": request.GET.urlencode(),
        "live_latest": selectors.latest_call_marker(organization=org),
    }
    return render(request, "analytics/requests.html", context)
