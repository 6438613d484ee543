"""The rows of the models, customers, features and keys tables, built in Python.

A 50-row customers page has ~500 cells, each a handful of filters and tags;
through the template engine that was ~12 ms of a page's CPU, in Python ~2 ms.
The cells are the same helpers the templates use (`money`, `cost_cell`,
`sparkline`, `change_pct`, `margin_class`), so a cell reads the same anywhere.
"""

from __future__ import annotations

import html
from typing import Any

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma
from django.utils.safestring import SafeString, mark_safe

from analytics.params import untagged_label
from analytics.templatetags.margin import margin_class
from analytics.templatetags.spend import (
    change_class,
    change_pct,
    cost_cell,
    detail_url,
    money,
    query_with,
    share,
    sparkline,
)

register = template.Library()

UNKNOWN_REVENUE = mark_safe(  # noqa: S308 (a constant)
    '<span class="muted" title="no revenue known for this period">—</span>'
)


def _e(value: Any) -> str:
    """As format_html escapes an argument (safe strings pass), without its
    lazy-string checks on every call."""
    return value if hasattr(value, "__html__") else html.escape(str(value))


def _name(by: str, key: Any, key_labels: dict | None) -> str:
    if by == "model":
        return key or "(unknown)"
    if by == "key":
        return str((key_labels or {}).get(key))
    return untagged_label(key)


def _trend_cell(context, row) -> str:
    change = context["changes"].get(row.key)
    return (
        f'<td class="num trend">{sparkline(context["sparklines"].get(row.key))} '
        f'<span class="{_e(change_class(change))}" title="vs the previous '
        f'{context["period"].days} days">{_e(change_pct(change, row.cost))}</span></td>'
    )


def _margin_cells(context, row) -> str:
    m = (context.get("margins") or {}).get(row.key)
    revenue = getattr(m, "revenue", None)
    margin = getattr(m, "margin", None)
    percent = getattr(m, "margin_percent", None)
    css = _e(margin_class(m, context.get("thin_percent")))
    return (
        f'<td class="num">{UNKNOWN_REVENUE if revenue is None else money(revenue)}</td>'
        f'<td class="num {css}">{"—" if margin is None else money(margin)}</td>'
        f'<td class="num {css}">{"—" if percent is None else _e(f"{percent} %")}</td>'
    )


@register.simple_tag(takes_context=True)
def table_rows(context) -> SafeString:
    """Every `<tr>` of analytics/table.html's body for `rows` (none: no rows)."""
    by = context["by"]
    total_cost = context["total"].cost
    trends = context.get("sparklines") is not None
    detail_query = _e(query_with(context, q="", sort="", profit=""))
    key_labels = context.get("key_labels")
    out = []
    for row in context["rows"]:
        cells = [
            f'<tr><td><a href="{_e(detail_url(by, row.key))}{detail_query}">'
            f"{_e(_name(by, row.key, key_labels))}</a></td>"
            f'<td class="num">{_e(intcomma(row.calls))}</td>'
            f'<td class="num">{_e(intcomma(row.tokens))}</td>'
            f'<td class="num">{money(row.avg_cost_per_call)}</td>'
            f'<td class="num">{cost_cell(row)}</td>'
            f'<td class="num">{_e(share(row.cost, total_cost))}</td>'
        ]
        if trends:
            cells.append(_trend_cell(context, row))
        if by == "customer":
            cells.append(_margin_cells(context, row))
        cells.append("</tr>\n")
        out.append("".join(cells))
    return mark_safe("".join(out))  # noqa: S308 (every value escaped by _e or a safe helper)
