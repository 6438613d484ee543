"""How numbers read on the pages: one rule each for money, durations and changes.

static/js/charts.js repeats `money_text` for chart tooltips (same cases, same
strings); tests/analytics/test_formatting.py holds both to hand-written strings.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
MICRO = Decimal("0.000001")
SIGNIFICANT = 3
# From a doubling up, a change reads as a multiple ("×2.5", "×386"), never "+38531.5 %".
MULTIPLE_FROM = Decimal(1)


def _significant(amount: Decimal, digits: int) -> Decimal:
    """`amount` (> 0) rounded to `digits` significant digits, keeping trailing zeros."""
    quantum = Decimal(1).scaleb(amount.adjusted() - digits + 1)
    rounded = amount.quantize(quantum, ROUND_HALF_UP)
    if rounded.adjusted() > amount.adjusted():  # 0.0009996 → 0.00100, not 0.001000
        rounded = rounded.quantize(quantum.scaleb(1), ROUND_HALF_UP)
    return rounded


def money_text(value) -> str:
    """USD for people: $1,234.57 from a dollar up; 3 significant digits below
    ($0.500, $0.0148, $0.000412) down to a micro-dollar; scientific below that
    ($4.40e-7), so a real call never reads as $0.00."""
    if value is None or value == "":
        return "$0.00"
    amount = Decimal(value)
    if amount == 0:
        return "$0.00"
    sign = "-" if amount < 0 else ""
    size = abs(amount)
    if size < 1:
        small = _significant(size, SIGNIFICANT)
        if small < 1:
            if small < MICRO:
                mantissa, exponent = f"{small:.{SIGNIFICANT - 1}e}".split("e")
                return f"{sign}${mantissa}e{int(exponent)}"
            return f"{sign}${small:f}"
    return f"{sign}${size.quantize(CENT, ROUND_HALF_UP):,}"


def money_exact(value) -> str:
    """Every stored digit, without trailing zeros: $0.0002275 (for tooltips)."""
    if value is None or value == "":
        return "$0"
    amount = Decimal(value)
    text = f"{abs(amount).normalize():f}"
    return f"{'-' if amount < 0 else ''}${text}"


def duration_text(ms) -> str:
    """250 ms, 1.3 s, 2.1 min, 1.5 h: the unit that fits."""
    if ms is None:
        return "—"
    if isinstance(ms, timedelta):
        ms = ms / timedelta(milliseconds=1)
    ms = Decimal(str(ms))
    if ms < 1000:
        return f"{ms.quantize(Decimal(1), ROUND_HALF_UP)} ms"
    if ms < 60_000:
        return f"{(ms / 1000).quantize(Decimal('0.1'), ROUND_HALF_UP)} s"
    if ms < 3_600_000:
        return f"{(ms / 60_000).quantize(Decimal('0.1'), ROUND_HALF_UP)} min"
    return f"{(ms / 3_600_000).quantize(Decimal('0.1'), ROUND_HALF_UP)} h"


def change_text(ratio, current=None) -> str:
    """A change vs the previous period: "+25.0 %", "−40.0 %", "×2.5", "×386";
    "new" when nothing came before and something now; "—" when nothing either time.
    `ratio` is (current - previous) / previous, None when previous was zero."""
    if ratio is None:
        return "new" if current else "—"
    ratio = Decimal(ratio)
    if ratio >= MULTIPLE_FROM:
        multiple = ratio + 1
        places = Decimal("0.1") if multiple < 10 else Decimal(1)
        return f"×{multiple.quantize(places, ROUND_HALF_UP):,}"
    pct = (ratio * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)
    if pct > 0:
        return f"+{pct} %"
    if pct < 0:
        return f"−{-pct} %"
    return "0.0 %"


def rate_text(share) -> str:
    """A share 0..1 as a percentage with one decimal: "2.5 %", "0.0 %"; "—" for None."""
    if share is None:
        return "—"
    return f"{(Decimal(share) * 100).quantize(Decimal('0.1'), ROUND_HALF_UP)} %"
