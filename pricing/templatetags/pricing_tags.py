"""Display helpers for prices (USD per million tokens)."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter(name="price_usd")
def price_usd(value) -> str:
    """`usd` under a name that does not clash with analytics' money filter."""
    return usd(value)


@register.filter
def usd(value) -> str:
    """Decimal('2.5000000000') → "$2.50", Decimal('0.0375') → "$0.0375", None → "—"."""
    if value is None or value == "":
        return "—"
    text = format(Decimal(value).normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


@register.filter
def tokens_short(value) -> str:
    """200000 → "200k", 1000000 → "1M"."""
    value = int(value)
    if value % 1_000_000 == 0:
        return f"{value // 1_000_000}M"
    if value % 1_000 == 0:
        return f"{value // 1_000}k"
    return f"{value:,}"
