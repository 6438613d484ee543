"""The re-pricing banner (issue 12): on the overview, requests and pricing pages."""

from __future__ import annotations

from django import template

from analytics.selectors.reprice_runs import reprice_runs_shown

register = template.Library()


@register.inclusion_tag("analytics/_reprice_banner.html")
def reprice_banner(organization):
    if organization is None:
        return {"runs": []}
    return {"runs": reprice_runs_shown(organization=organization)}
