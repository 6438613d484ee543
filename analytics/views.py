"""Dashboard pages. The overview grows with the analytics issue; for now it
shows spend so far and the two-line setup snippet."""

from __future__ import annotations

from django.shortcuts import render

from accounts.decorators import organization_required


def _base_url(request) -> str:
    from django.conf import settings

    return (settings.AISPENDTRACK_PUBLIC_URL or request.build_absolute_uri("/")).rstrip("/")


@organization_required
def dashboard(request):
    return render(request, "analytics/dashboard.html", {"base_url": _base_url(request)})
