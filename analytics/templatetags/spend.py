"""Template helpers for the spend pages: money, change, query strings, detail links."""

from __future__ import annotations

import functools
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
from analytics.sorting import first_click

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


@register.simple_tag(takes_context=True)
def sort_header(context, column: str, label: str, num: bool = False, key: str = "") -> str:
    """A sortable table header: a link that sorts by `column` (its first-click
    direction, or the other way if the table is sorted by it already), with
    aria-sort on the sorted one. `key` names the link for tests (default the column)."""
    sort = context["sort"]
    active = sort.column == column and (not key or key == column)
    target = sort.toggled() if active else first_click(column, context["columns"])
    direction = "descending" if sort.descending else "ascending"
    return format_html(
        '<th{}{}><a href="{}" class="sort{}" data-sort-key="{}">{}</a></th>',
        mark_safe(' class="num"') if num else "",  # noqa: S308 (a constant)
        format_html(' aria-sort="{}"', direction) if active else "",
        query_with(context, sort=target.param),
        (" active desc" if sort.descending else " active asc") if active else "",
        key or column,
        label,
    )


SPARK_WIDTH = 100
SPARK_HEIGHT = 20


def sparkline_points(values) -> str:
    """Polyline points of daily values on a SPARK_WIDTH × SPARK_HEIGHT box:
    x spreads the days evenly, y = 0 is the biggest day (1 px margin), the
    bottom line is zero. Floats: the line only draws (like the charts), and a
    page draws thousands of points."""
    values = [float(v) for v in values] or [0.0]
    if len(values) == 1:
        values = values * 2
    top = max(values)
    scale = (SPARK_HEIGHT - 2) / top if top > 0 else 0.0
    return " ".join(
        f"{x},{round(SPARK_HEIGHT - 1 - value * scale, 1):g}"
        for x, value in zip(_spark_xs(len(values)), values, strict=True)
    )


@functools.cache
def _spark_xs(count: int) -> tuple[str, ...]:
    """The x of each of `count` points (every row of a page has the same)."""
    step = SPARK_WIDTH / (count - 1)
    return tuple(f"{round(step * n, 1):g}" for n in range(count))


@register.simple_tag
def sparkline(values) -> str:
    """Daily cost as a small inline SVG line (server-rendered, no script: CSP-safe)."""
    peak = max(values, default=0)
    return format_html(
        '<svg class="sparkline" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        'preserveAspectRatio="none" role="img" aria-label="Daily cost, peak {}">'
        '<polyline points="{}" vector-effect="non-scaling-stroke"/></svg>',
        money_text(peak),
        sparkline_points(values),
        w=SPARK_WIDTH,
        h=SPARK_HEIGHT,
    )


@register.filter
def get_item(mapping, key):
    """mapping[key] in a template (None when absent)."""
    return None if mapping is None else mapping.get(key)
