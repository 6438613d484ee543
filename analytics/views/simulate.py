"""The Simulate pages: one scope re-priced on every model, and every feature's best saving."""

from __future__ import annotations

from django.shortcuts import render
from django.urls import reverse

from analytics import selectors
from analytics.api.simulate import parse_max_drop
from analytics.params import ParamError, parse_choice, untagged_label, untagged_value
from analytics.simulator import SCOPES, simulate, simulate_features
from analytics.views.common import bad_request, page_period, range_context, spend_page
from pricing.benchmarks import benchmarks_exist

LISTED = 25  # candidates shown per group (the API lists more)
SUGGESTIONS = 200


def _suggestions(organization, period) -> dict[str, list[str]]:
    """Values to pick from, costliest first (a datalist; any value may be typed)."""
    out = {}
    for scope, by in (("feature", "feature"), ("customer", "customer"), ("model", "model")):
        rows = selectors.spend_breakdown(
            organization=organization, period=period, by=by, limit=SUGGESTIONS
        )
        out[scope] = [untagged_label(row.key) if by != "model" else row.key for row in rows]
    return out


@spend_page
def simulate_page(request):
    org = request.organization
    try:
        period = page_period(request)
        scope = parse_choice(request.GET, "scope", SCOPES, default="organization")
        max_drop = parse_max_drop(request.GET)
    except ParamError as error:
        return bad_request(request, error)
    raw = (request.GET.get("value") or "").strip()
    if scope != "organization" and not raw:
        return bad_request(request, ParamError(f"Choose which {scope} to simulate."))
    value = None if scope == "organization" else untagged_value(raw)
    sim = simulate(
        organization=org, period=period, scope=scope, value=value, max_score_drop=max_drop
    )
    context = {
        **range_context(request, period),
        "sim": sim,
        "scope": scope,
        "value": raw,
        "scopes": SCOPES,
        "listed": LISTED,
        "suggestions": _suggestions(org, period),
        "benchmark_admin_url": reverse("admin:pricing_modelbenchmark_changelist"),
    }
    return render(request, "analytics/simulate.html", context)


@spend_page
def simulate_features_page(request):
    try:
        period = page_period(request)
        max_drop = parse_max_drop(request.GET)
    except ParamError as error:
        return bad_request(request, error)
    rows = simulate_features(
        organization=request.organization, period=period, max_score_drop=max_drop
    )
    context = {
        **range_context(request, period),
        "rows": rows,
        "benchmark_admin_url": reverse("admin:pricing_modelbenchmark_changelist"),
        "benchmarks_known": benchmarks_exist(),
    }
    return render(request, "analytics/simulate_features.html", context)
