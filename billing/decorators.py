"""Feature gating of pages by plan (the REST API's is billing.permissions)."""

from __future__ import annotations

from functools import wraps

from django.shortcuts import render

from billing.selectors import FEATURE_NAMES, feature_denial


def plan_feature_required(feature: str):
    """Pages of `feature` ("alerts", "export", "api"): on a plan without it the
    page is replaced by an upgrade prompt (403). Apply inside
    organization_required, so `request.organization` is set."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            message = feature_denial(organization=request.organization, feature=feature)
            if message is not None:
                context = {"feature": FEATURE_NAMES.get(feature, feature), "message": message}
                return render(request, "billing/feature_required.html", context, status=403)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
