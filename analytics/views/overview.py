"""The overview (`/dashboard/`): where the money went, in one look; or, before the
first call, the setup snippet and a live "waiting for your first call"."""

from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from accounts.selectors import api_key_get_for_org
from analytics import selectors
from analytics.formatting import money_text
from analytics.params import ParamError
from analytics.selectors import Totals
from analytics.selectors.revenue import unprofitable_this_month
from analytics.views.common import (
    bad_request,
    base_url,
    calls_chart,
    filter_bar_context,
    page_filters,
    page_period,
    pie_chart,
    range_context,
    spend_page,
    trend_chart,
)
from analytics.views.live_fragment import live_fragment_for_page, live_page, live_template

PIE_SLICES = 7


@spend_page
@live_page
def dashboard(request):
    org = request.organization
    try:
        period = page_period(request)
        filters = page_filters(request)
    except ParamError as error:
        return bad_request(request, error)
    if not selectors.first_call_exists(organization=org):
        return render(request, "analytics/empty.html", {"base_url": base_url(request)})
    # Every period the page reads: under a filter only the events answer,
    # their matching calls are found once for all of them.
    periods = [period, period.previous(), *selectors.forecast_periods(organization=org)]
    with selectors.events_matched(organization=org, filters=filters, periods=periods) as filters:
        context = _context(request, period, filters)
    template = live_template(
        request, page="analytics/overview.html", fragment="analytics/_overview_live.html"
    )
    return render(request, template, context)


def _context(request, period, filters) -> dict:
    org = request.organization
    scope = {"organization": org, "filters": filters}
    by_model = selectors.spend_breakdown(**scope, period=period, by="model")
    total = Totals()
    for row in by_model:
        total.add(row)
    slices = by_model[:PIE_SLICES]
    if len(by_model) > PIE_SLICES:
        other = Totals(key=selectors.OTHER)
        for row in by_model[PIE_SLICES:]:
            other.add(row)
        slices.append(other)
    daily = selectors.spend_daily(**scope, period=period, by="model", top=6)
    previous_daily = selectors.spend_daily(**scope, period=period.previous())
    return {
        **range_context(request, period),
        **filter_bar_context(request, period, filters),
        "headline": selectors.overview_headline(**scope, period=period),
        # The preset strip and the margin card are of the whole organization:
        # shown unfiltered only, so that every figure on a filtered page is filtered.
        "cards": None if filters.active else selectors.spend_cards(organization=org),
        "total": total,
        "by_model": by_model[:10],
        "pie": pie_chart(slices),
        "trend": trend_chart(daily, previous=previous_daily),
        "calls_chart": calls_chart(daily),
        "customers": selectors.spend_breakdown(**scope, period=period, by="customer", limit=5),
        "features": selectors.spend_breakdown(**scope, period=period, by="feature", limit=5),
        "top_requests": selectors.requests_top_expensive(**scope, period=period, limit=5),
        "forecast": selectors.spend_forecast(**scope),
        "unpriced": selectors.unpriced_summary(organization=org, period=period),
        "unprofitable": None if filters.active else unprofitable_this_month(organization=org),
        "live_latest": selectors.live_marker(organization=org),
    }


@never_cache
@spend_page
def live(request):
    """Polled every 5 s by open live pages (static/js/live.js): the marker, read
    once a second at most for all of the organization's open pages (beside the
    session's own queries). The page re-fetches its #live block only when
    `latest` moved; with `?page=` (the tab's path and query) and `since=`
    (its marker), a moved marker's answer also carries that block as
    `fragment` when the organization's tabs share a fresh render of it, and
    the tab has nothing to fetch."""
    latest = selectors.live_marker(organization=request.organization)
    answer = {"latest": latest}
    page, since = request.GET.get("page"), request.GET.get("since")
    if page is not None and since is not None and since != latest:
        fragment = live_fragment_for_page(request, page)
        if fragment is not None:
            answer["fragment"] = fragment
    return JsonResponse(answer)


@never_cache
@spend_page
def first_call(request):
    """Polled every few seconds by the empty state and, with `?key_id=`, by the
    page that just created that key; tiny and uncached."""
    org = request.organization
    raw_key_id = request.GET.get("key_id")
    if raw_key_id is None:
        return JsonResponse({"has_calls": selectors.first_call_exists(organization=org)})
    if not raw_key_id.isdigit():
        return JsonResponse({"error": "key_id must be a key's number"}, status=400)
    key = api_key_get_for_org(organization=org, key_id=int(raw_key_id))  # 404 if not ours
    record = selectors.first_call_with_key(organization=org, api_key=key)
    if record is None:
        return JsonResponse({"has_calls": False})
    return JsonResponse(
        {
            "has_calls": True,
            "request_id": record["id"],
            "url": reverse("request_detail", args=[record["id"]]),
            "model": record["model"],
            "status": record["status"],
            "cost": money_text(record["cost"]) if record["priced"] else "unpriced",
        }
    )
