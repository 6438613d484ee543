"""The overview's budget cards: budgets near or over their limit, and calls
refused per hour by budgets and plan limits. A template tag, so analytics'
overview needs no import of alerts (alerts depends on analytics, not back)."""

from __future__ import annotations

from django import template

from alerts.selectors import budget_statuses, budgets_needing_attention, refusals_by_hour

register = template.Library()


@register.inclusion_tag("alerts/_overview_cards.html")
def budget_cards(organization):
    if organization is None:
        return {"attention": [], "refusals": []}
    return {
        "attention": budgets_needing_attention(organization=organization),
        "refusals": refusals_by_hour(organization=organization),
    }


@register.inclusion_tag("alerts/_budget_forecasts.html")
def budget_forecasts(organization):
    """The month-end forecast card's line per active budget: its projected
    end-of-period spend against its amount."""
    if organization is None:
        return {"forecasts": []}
    statuses = budget_statuses(organization=organization, forecast=True)
    return {"forecasts": [status for status in statuses if status.budget.is_active]}
