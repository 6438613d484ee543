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
        ("0.5", "$0.50"),
        ("0.0148231234", "$0.014823"),
        ("0.000412", "$0.000412"),
        ("0.0000004", "$0.00"),  # below a micro-dollar
        ("-0.25", "-$0.25"),
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
    assert "$2.50" in partly and "+ 1 unpriced" in partly
    assert cost_cell(Row(calls=3, cost=Decimal("2.5"))) == "$2.50"
