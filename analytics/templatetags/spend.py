"""Template helpers for the spend pages: money, change, query strings, detail links."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlencode

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from analytics.formatting import (
    change_text,
    duration_text,
    money_exact,
    money_text,
    rate_text,
)
from analytics.params import untagged_label

register = template.Library()

DETAIL_ROUTES = {
    "model": "model_detail",
    "customer": "customer_detail",
    "feature": "feature_detail",
    "key": "key_detail",
}


@register.filter
def usd(value) -> str:
    """Money as text (analytics.formatting.money_text): for attributes and plain text."""
    return money_text(value)


@register.filter
def money(value) -> str:
    """Money for people, with every stored digit in a tooltip."""
    return format_html(
        '<span class="money" title="{}">{}</span>', money_exact(value), money_text(value)
    )


@register.filter(name="money_exact")
def money_exact_filter(value) -> str:
    return money_exact(value)


@register.simple_tag
def cost_cell(row) -> str:
    """A breakdown row's cost; rows with unpriced calls say so in a badge, never
    as a number beside the dollars (and never as a silent $0)."""
    unpriced = getattr(row, "unpriced_calls", 0) or 0
    if unpriced and unpriced >= row.calls:
        return mark_safe(  # noqa: S308 (a constant)
            '<span class="badge badge-warn" title="no price for this model yet">unpriced</span>'
        )
    if unpriced:
        return format_html(
            '{} <span class="badge badge-warn" title="{} call{} without a price: not in this sum">'
            "{} unpriced</span>",
            money(row.cost),
            intcomma(unpriced),
            pluralize(unpriced),
            intcomma(unpriced),
        )
    return money(row.cost)


@register.filter
def change_pct(ratio, current=None) -> str:
    """A change vs the previous period (analytics.formatting.change_text); pass the
    current value so that "nothing before" reads "new" rather than "—"."""
    return change_text(ratio, current)


@register.filter
def rate(share) -> str:
    """A share 0..1 as "2.5 %" ("—" when there is nothing to divide)."""
    return rate_text(share)


@register.filter
def duration(ms) -> str:
    """Milliseconds (or a timedelta) in the unit that fits: 250 ms, 1.3 s, 2.1 min."""
    return duration_text(ms)


@register.filter
def change_class(ratio) -> str:
    if ratio is None or ratio == 0:
        return ""
    return "delta-up" if ratio > 0 else "delta-down"


@register.filter
def untagged(value) -> str:
    return untagged_label(value)


@register.filter
def share(part, whole) -> str:
    """part / whole as a percentage with one decimal ("" if whole is 0)."""
    if not whole:
        return ""
    return f"{(Decimal(part) * 100 / Decimal(whole)).quantize(Decimal('0.1'))} %"


@register.simple_tag
def detail_url(by: str, value) -> str:
    if by == "key":
        return reverse("key_detail", args=[value]) if value else ""
    return reverse(DETAIL_ROUTES[by], args=[untagged_label(value)])


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with some parameters changed ("" removes one)."""
    params = context["request"].GET.copy()
    for name, value in changes.items():
        params.pop(name, None)
        if value not in (None, ""):
            params[name] = value
    # Any change of filters/sort starts again from the first page.
    if "page" not in changes:
        params.pop("page", None)
    if "cursor" not in changes:
        params.pop("cursor", None)
    encoded = urlencode(sorted(params.items()))
    return f"?{encoded}" if encoded else "?"


@register.simple_tag(takes_context=True)
def carry_params(context, *exclude: str) -> list[tuple[str, str]]:
    """(name, value) pairs of the current query to repeat as hidden inputs."""
    skip = {*exclude, "page", "cursor"}
    return [(k, v) for k, v in context["request"].GET.items() if k not in skip]


@register.filter
def preset_label(key: str) -> str:
    from analytics.periods import PRESETS

    return PRESETS.get(key, key)
