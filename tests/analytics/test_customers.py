"""Per-customer spend from CustomerRollup (days, weeks, months in the org's
zone) equals the sums of the calls themselves; so does the hourly fallback
used while the daily tables are being re-keyed."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from accounts.models import Organization
from analytics import selectors
from analytics.fold import daily_rollups_rebuild
from analytics.models import CustomerRollup, HourlyRollup, Span, Status
from analytics.params import UsageFilters
from analytics.periods import Period
from tests.analytics.conftest import call

NEW_YORK = ZoneInfo("America/New_York")
CUSTOMERS = ["", "acme", "Beta", "beta-2", "zeta"]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"]
FEATURES = ["", "chat", "search"]
TODAY = date(2026, 11, 20)  # "now" for the intervals: after every call below


@pytest.fixture
def calls(org, ingest):
    """Calls every ~97 minutes from Oct 29 to Nov 4, 2026 (US DST ends Nov 1)."""
    org.timezone = "America/New_York"
    org.save()
    daily_rollups_rebuild(org.pk)
    org.refresh_from_db()
    rng = random.Random(7)
    written = []
    moment = datetime(2026, 10, 29, 0, 7, tzinfo=UTC)
    while moment < datetime(2026, 11, 5, tzinfo=UTC):
        written.append(
            call(
                org,
                moment,
                customer_id=rng.choice(CUSTOMERS),
                model=rng.choice(MODELS),
                feature=rng.choice(FEATURES),
                cost=None if rng.random() < 0.1 else f"{rng.randint(1, 99_999) / 1e6:.6f}",
                status=Status.SUCCESS if rng.random() < 0.8 else Status.UPSTREAM_ERROR,
                input_tokens=rng.randint(1, 5000),
            )
        )
        moment += timedelta(minutes=97)
    ingest(*written)
    return written


@pytest.fixture(params=["daily", "hourly"])
def source(request, org, calls):
    """Read through the daily tables, or with them marked stale (zone change pending)."""
    if request.param == "hourly":
        Organization.objects.filter(pk=org.pk).update(rollup_timezone="")
        org.refresh_from_db()
    return request.param


@pytest.fixture(autouse=True)
def today(monkeypatch):
    monkeypatch.setattr("analytics.selectors._common.org_today", lambda organization: TODAY)


def expected(records, period: Period, *, search: str = "", by="customer_id", **where):
    """Sums straight from the calls whose UTC hour starts inside the period."""
    sums: dict[str, list] = defaultdict(lambda: [0, Decimal(0), 0, 0, 0])
    for r in records:
        hour = r.created_at.replace(minute=0, second=0, microsecond=0)
        if not (period.start_utc <= hour < period.end_utc):
            continue
        if any(getattr(r, name) != value for name, value in where.items()):
            continue
        key = getattr(r, by)
        if search.lower() not in key.lower():
            continue
        row = sums[key]
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
    (date(2026, 10, 30), date(2026, 10, 30)),  # one local day
    (date(2026, 10, 29), date(2026, 11, 4)),  # whole range, across the DST change
    (date(2026, 10, 31), date(2026, 11, 2)),  # DST day in the middle
    (date(2026, 11, 1), date(2026, 11, 1)),  # the 25-hour day itself
    (date(2026, 10, 26), date(2026, 11, 1)),  # exactly one ISO week
    (date(2026, 10, 1), date(2026, 11, 20)),  # a whole month, then weeks and days to today
    (date(2026, 11, 1), date(2026, 11, 20)),  # month to date (the month's interval)
]


@pytest.mark.parametrize(("start", "end"), PERIODS)
def test_customer_totals_equal_the_calls(org, calls, source, start, end):
    period = Period(start, end, NEW_YORK)

    def customers(**kwargs):
        return selectors.spend_breakdown(organization=org, period=period, by="customer", **kwargs)

    assert got(customers()) == expected(calls, period)
    assert got(customers(search="beta")) == expected(calls, period, search="beta")
    count = selectors.spend_breakdown_count(organization=org, period=period, by="customer")
    assert count == len(expected(calls, period))
    # "customers of this model" and "of this feature" (model and feature pages)
    for name, value in (("model", "gpt-4o-mini"), ("feature", "chat"), ("feature", "")):
        filters = UsageFilters(**{name: value})
        assert got(customers(filters=filters)) == expected(calls, period, **{name: value})


@pytest.mark.parametrize(("start", "end"), PERIODS)
def test_one_customer_split_by_model_and_feature(org, calls, source, start, end):
    period = Period(start, end, NEW_YORK)
    filters = UsageFilters(customer_id="acme")
    for by in ("model", "feature"):
        rows = selectors.spend_breakdown(organization=org, period=period, by=by, filters=filters)
        assert got(rows) == expected(calls, period, by=by, customer_id="acme")
    totals = selectors.spend_totals(organization=org, period=period, filters=filters)
    acme = expected(calls, period, customer_id="acme").get("acme", (0, Decimal(0), 0, 0, 0))
    assert got([totals]) == {None: acme}
    daily = selectors.spend_daily(organization=org, period=period, filters=filters, by="model")
    assert sum(d.calls for d in daily.days) == totals.calls
    assert sum(sum(values) for values in daily.series.values()) == totals.cost


def test_the_interval_table_is_really_read(org, calls):
    """With every hourly customer row gone the answer must not move: it came
    from CustomerRollup, whose month and week intervals are really used."""
    period = Period(date(2026, 10, 1), date(2026, 11, 20), NEW_YORK)
    before = got(selectors.spend_breakdown(organization=org, period=period, by="customer"))
    HourlyRollup.objects.filter(organization=org).delete()
    after = selectors.spend_breakdown(organization=org, period=period, by="customer")
    assert got(after) == before
    spans = set(CustomerRollup.objects.filter(organization=org).values_list("span", flat=True))
    assert spans == {Span.DAY, Span.WEEK, Span.MONTH}


@pytest.mark.parametrize("order", ["cost", "calls", "name"])
def test_breakdown_orders_and_pages(org, calls, source, order):
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
    mine = selectors.spend_breakdown(organization=org, period=period, by="customer")
    assert got(mine) == expected(calls, period)
    other_period = Period(date(2026, 10, 29), date(2026, 11, 4), ZoneInfo("UTC"))
    other = selectors.spend_breakdown(organization=other_org, period=other_period, by="customer")
    assert [(t.key, t.calls) for t in other] == [("acme", 1)]
