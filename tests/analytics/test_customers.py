"""Per-customer spend from the daily rollup equals the sums of the calls
themselves, for local days in any zone (whole UTC days + hourly edges)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from analytics import selectors
from analytics.models import DailyCustomerRollup, HourlyRollup, Status
from analytics.periods import Period
from analytics.selectors.customers import customer_count, customer_totals
from tests.analytics.conftest import call

NEW_YORK = ZoneInfo("America/New_York")
CUSTOMERS = ["", "acme", "Beta", "beta-2", "zeta"]


@pytest.fixture
def calls(org, ingest):
    """Calls every ~97 minutes from Oct 29 to Nov 4, 2026 (US DST ends Nov 1)."""
    org.timezone = "America/New_York"
    org.save()
    rng = random.Random(7)
    written = []
    moment = datetime(2026, 10, 29, 0, 7, tzinfo=UTC)
    while moment < datetime(2026, 11, 5, tzinfo=UTC):
        written.append(
            call(
                org,
                moment,
                customer_id=rng.choice(CUSTOMERS),
                cost=None if rng.random() < 0.1 else f"{rng.randint(1, 99_999) / 1e6:.6f}",
                status=Status.SUCCESS if rng.random() < 0.8 else Status.UPSTREAM_ERROR,
                input_tokens=rng.randint(1, 5000),
            )
        )
        moment += timedelta(minutes=97)
    ingest(*written)
    return written


def expected(records, period: Period, search: str = "") -> dict[str, tuple]:
    """Sums straight from the calls whose UTC hour starts inside the period."""
    sums: dict[str, list] = defaultdict(lambda: [0, Decimal(0), 0, 0, 0])
    for r in records:
        hour = r.created_at.replace(minute=0, second=0, microsecond=0)
        if not (period.start_utc <= hour < period.end_utc):
            continue
        if search.lower() not in r.customer_id.lower():
            continue
        row = sums[r.customer_id]
        row[0] += 1
        row[1] += r.cost or 0
        row[2] += 0 if r.cost is not None else 1
        row[3] += 0 if r.status == Status.SUCCESS else 1
        row[4] += r.usage.input_tokens
    return {key: tuple(value) for key, value in sums.items()}


def got(totals) -> dict[str, tuple]:
    return {
        t.key: (t.calls, t.cost, t.unpriced_calls, t.error_calls, t.input_tokens) for t in totals
    }


PERIODS = [
    (date(2026, 10, 30), date(2026, 10, 30)),  # one local day: edges only
    (date(2026, 10, 29), date(2026, 11, 4)),  # whole range, across the DST change
    (date(2026, 10, 31), date(2026, 11, 2)),  # DST day in the middle
    (date(2026, 11, 1), date(2026, 11, 1)),  # the 25-hour day itself
]


@pytest.mark.parametrize(("start", "end"), PERIODS)
def test_customer_totals_equal_the_calls(org, calls, start, end):
    period = Period(start, end, NEW_YORK)
    assert got(customer_totals(organization=org, period=period)) == expected(calls, period)
    assert got(customer_totals(organization=org, period=period, search="beta")) == expected(
        calls, period, "beta"
    )
    assert customer_count(organization=org, period=period) == len(expected(calls, period))


def test_the_daily_table_is_really_read(org, calls):
    """The multi-day period must come mostly from the daily table: blank the
    hourly customer rows inside whole UTC days and the answer must not move."""
    period = Period(date(2026, 10, 29), date(2026, 11, 4), NEW_YORK)
    before = got(customer_totals(organization=org, period=period))
    first_whole_day = datetime(2026, 10, 30, tzinfo=UTC)
    HourlyRollup.objects.filter(
        organization=org, hour__gte=first_whole_day, hour__lt=first_whole_day + timedelta(days=5)
    ).delete()
    assert got(customer_totals(organization=org, period=period)) == before
    assert DailyCustomerRollup.objects.filter(organization=org).exists()


@pytest.mark.parametrize("order", ["cost", "calls", "name"])
def test_breakdown_orders_and_pages(org, calls, order):
    period = Period(date(2026, 10, 29), date(2026, 11, 4), NEW_YORK)
    rows = selectors.spend_breakdown(organization=org, period=period, by="customer", order=order)
    sums = expected(calls, period)
    keys = {
        "cost": lambda k: (-sums[k][1], k),
        "calls": lambda k: (-sums[k][0], k),
        "name": lambda k: k,
    }
    assert [r.key for r in rows] == sorted(sums, key=keys[order])
    page = selectors.spend_breakdown(
        organization=org, period=period, by="customer", order=order, limit=2, offset=1
    )
    assert [r.key for r in page] == [r.key for r in rows][1:3]


def test_other_organizations_are_not_counted(org, other_org, calls, ingest):
    ingest(call(other_org, datetime(2026, 11, 2, 12, tzinfo=UTC), customer_id="acme"))
    period = Period(date(2026, 10, 29), date(2026, 11, 4), NEW_YORK)
    assert got(customer_totals(organization=org, period=period)) == expected(calls, period)
    other = customer_totals(organization=other_org, period=period)
    assert [(t.key, t.calls) for t in other] == [("acme", 1)]
