"""Money on the pages: exact enough to read, never a silent $0."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from analytics.templatetags.spend import cost_cell, usd


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("1234.567", "$1,234.57"),
        ("1", "$1.00"),
        ("0.5", "$0.500"),
        ("0.0148231234", "$0.0148"),
        ("0.000412", "$0.000412"),
        ("0.0000004", "$4.00e-7"),  # below a micro-dollar: scientific, never $0.00
        ("-0.25", "-$0.250"),
        ("0", "$0.00"),
        (None, "$0.00"),
    ],
)
def test_usd(amount, shown):
    assert usd(None if amount is None else Decimal(amount)) == shown


@dataclass
class Row:
    calls: int
    cost: Decimal
    unpriced_calls: int = 0


def test_cost_cell_never_shows_a_silent_zero():
    assert "unpriced" in cost_cell(Row(calls=3, cost=Decimal(0), unpriced_calls=3))
    partly = cost_cell(Row(calls=3, cost=Decimal("2.5"), unpriced_calls=1))
    assert "$2.50" in partly
    assert (
        '<span class="badge badge-warn" title="1 call without a price: not in this sum">'
        "1 unpriced</span>" in partly
    )
    assert "+" not in partly  # a count of calls is never added to dollars
    many = cost_cell(Row(calls=2000, cost=Decimal("2.5"), unpriced_calls=1047))
    assert ">1,047 unpriced</span>" in many and "1,047 calls without a price" in many
    assert cost_cell(Row(calls=3, cost=Decimal("2.5"))) == (
        '<span class="money" title="$2.5">$2.50</span>'
    )
