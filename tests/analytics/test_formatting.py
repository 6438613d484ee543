"""How numbers read: every expected string below is written by hand."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from analytics.formatting import change_text, duration_text, money_exact, money_text, rate_text

MONEY_CASES = [
    ("1234.567", "$1,234.57"),
    ("1000000", "$1,000,000.00"),
    ("1", "$1.00"),
    ("0.9996", "$1.00"),  # rounds up into dollars
    ("0.5", "$0.500"),
    ("0.123456", "$0.123"),
    ("0.0148231234", "$0.0148"),
    ("0.0002275000", "$0.000228"),
    ("0.000311", "$0.000311"),
    ("0.0002", "$0.000200"),
    ("0.0009996", "$0.00100"),  # 3 significant digits after rounding up
    ("0.000001", "$0.00000100"),
    ("0.00000044", "$4.40e-7"),
    ("0.0000000012345", "$1.23e-9"),
    ("-0.25", "-$0.250"),
    ("-12.5", "-$12.50"),
    ("0", "$0.00"),
    ("0E-10", "$0.00"),
]


@pytest.mark.parametrize(("amount", "shown"), MONEY_CASES)
def test_money_text(amount, shown):
    assert money_text(Decimal(amount)) == shown


def test_money_text_of_nothing():
    assert money_text(None) == "$0.00"


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("0.0002275000", "$0.0002275"),
        ("12.3456789000", "$12.3456789"),
        ("3.0000000000", "$3"),
        ("-0.0000004400", "-$0.00000044"),
    ],
)
def test_money_exact_keeps_every_digit(amount, shown):
    assert money_exact(Decimal(amount)) == shown


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (0, "0 ms"),
        (250, "250 ms"),
        (999, "999 ms"),
        (1000, "1.0 s"),
        (1340, "1.3 s"),
        (59_949, "59.9 s"),
        (126_863, "2.1 min"),
        (5_400_000, "1.5 h"),
        (timedelta(seconds=90), "1.5 min"),
        (timedelta(0), "0 ms"),
        (None, "—"),
    ],
)
def test_duration_text(ms, shown):
    assert duration_text(ms) == shown


@pytest.mark.parametrize(
    ("ratio", "current", "shown"),
    [
        ("0.25", "5", "+25.0 %"),
        ("-0.4", "3", "−40.0 %"),
        ("0", "3", "0.0 %"),
        ("0.999", "3", "+99.9 %"),
        ("1", "2", "×2.0"),
        ("1.5", "2.5", "×2.5"),
        ("386.315", "38732", "×387"),
        ("12000", "1", "×12,001"),
        (None, "4", "new"),
        (None, "0", "—"),
        (None, None, "—"),
    ],
)
def test_change_text(ratio, current, shown):
    assert (
        change_text(None if ratio is None else Decimal(ratio), current and Decimal(current))
        == shown
    )


@pytest.mark.parametrize(
    ("share", "shown"),
    [("0.25", "25.0 %"), ("0.0004", "0.0 %"), ("0.00051", "0.1 %"), ("1", "100.0 %"), (None, "—")],
)
def test_rate_text(share, shown):
    assert rate_text(None if share is None else Decimal(share)) == shown
