"""Template helpers for the spend pages: money, change, query strings, detail links."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlencode

from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

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
    """$1,234.56 from a dollar up; below, to the micro-dollar ($0.014823, $0.000412),
    so a call's cost never reads as a rounded $0.01 or $0.00."""
    if value is None or value == "":
        return "$0.00"
    amount = Decimal(value)
    if amount == 0:
        return "$0.00"
    if abs(amount) < 1:
        micro = amount.quantize(Decimal("0.000001"), ROUND_HALF_UP)
        text = format(abs(micro), "f").rstrip("0")
        if len(text.split(".")[1]) < 2:  # keep cents visible: $0.50, not $0.5
            text = format(abs(micro).quantize(Decimal("0.01")), "f")
        return f"${text}" if amount > 0 else f"-${text}"
    rounded = amount.quantize(Decimal("0.01"), ROUND_HALF_UP)
    return f"${rounded:,}" if rounded >= 0 else f"-${-rounded:,}"


@register.simple_tag
def cost_cell(row) -> str:
    """A breakdown row's cost; rows with unpriced calls say so (never a silent $0)."""
    unpriced = getattr(row, "unpriced_calls", 0) or 0
    if unpriced and unpriced >= row.calls:
        return mark_safe(  # noqa: S308 (a constant)
            '<span class="badge badge-warn" title="no price for this model yet">unpriced</span>'
        )
    if unpriced:
        return format_html(
            '{} <span class="muted" title="{} calls have no price yet">+ {} unpriced</span>',
            usd(row.cost),
            unpriced,
            unpriced,
        )
    return usd(row.cost)


@register.filter
def change_pct(ratio) -> str:
    """A change ratio as "+25.0 %"; "new" when there was nothing before."""
    if ratio is None:
        return "—"
    pct = (Decimal(ratio) * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)
    return f"{'+' if pct > 0 else ''}{pct} %"


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
