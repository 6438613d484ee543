"""Margin cells of the customers pages (issue 13)."""

from __future__ import annotations

from django import template

from analytics.selectors.revenue import Margin

register = template.Library()


@register.filter
def margin_for(margins: dict[str, Margin] | None, key: str) -> Margin | None:
    """The margin of one customer row, from the view's {customer id: Margin}."""
    return None if margins is None else margins.get(key)


@register.filter
def margin_class(margin: Margin | None, threshold) -> str:
    if margin is None or margin.margin is None:
        return ""
    if margin.margin < 0:
        return "bad"
    return "warn" if margin.thin(threshold) else "good"
