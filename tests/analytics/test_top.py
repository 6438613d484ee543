"""The threshold algorithm's top customers equal a full ranking, exactly."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from analytics import selectors
from analytics.params import UsageFilters
from analytics.periods import Period
from analytics.selectors import top
from tests.analytics.conftest import call

TODAY = date(2026, 11, 20)


@pytest.fixture(autouse=True)
def today(monkeypatch):
    monkeypatch.setattr("analytics.selectors.top.org_today", lambda organization: TODAY)
    monkeypatch.setattr("analytics.selectors._common.org_today", lambda organization: TODAY)


@pytest.fixture
def spend(org, other_org, ingest):
    """150 customers over three weeks: a long tail, with near-ties and exact ties."""
    rng = random.Random(17)
    records = []
    start = datetime(2026, 10, 30, tzinfo=UTC)
    for _ in range(900):
        rank = min(int(rng.paretovariate(0.9)), 150)
        cost = f"{1 / rank + rng.choice([0, 0, 1e-9]):.10f}"
        at = start + timedelta(minutes=rng.randrange(21 * 24 * 60))
        model = rng.choice(["gpt-4o", "gpt-4o", "o3"])
        records.append(call(org, at, customer_id=f"c{rank:03d}", cost=cost, model=model))
    # a model without a price: every customer of it ties at zero
    for n in range(12):
        records.append(
            call(
                org, start + timedelta(hours=n), customer_id=f"z{n:02d}", cost=None, model="mystery"
            )
        )
    # a rich customer of another organization must never appear
    records.append(call(other_org, start, customer_id="intruder", cost="999.0000000000"))
    ingest(*records)


def full_ranking(org, period, k, filters=None):
    rows = selectors.spend_breakdown(
        organization=org, period=period, by="customer", filters=filters
    )
    return [row.key for row in rows][:k]


@pytest.mark.parametrize("depth", [1, 2, 32])
@pytest.mark.parametrize(
    ("first", "last"),
    [
        (date(2026, 10, 30), TODAY),  # days, weeks, the month to date
        (date(2026, 11, 2), date(2026, 11, 8)),  # one week
        (date(2026, 11, 3), date(2026, 11, 5)),  # days only
        (date(2026, 10, 1), date(2026, 10, 31)),  # a month with only its last days used
    ],
)
def test_top_k_equals_the_full_ranking(org, spend, monkeypatch, depth, first, last):
    monkeypatch.setattr(top, "MIN_DEPTH", depth)
    period = Period(first, last, ZoneInfo("UTC"))
    for k in (1, 5, 25, 200):
        assert top.top_customers_by_cost(organization=org, period=period, k=k) == full_ranking(
            org, period, k
        )
        # the customers of one model (the model page's ranking)
        of_o3 = top.top_customers_by_cost(
            organization=org, period=period, k=k, dimension="model", value="o3"
        )
        assert of_o3 == full_ranking(org, period, k, UsageFilters(model="o3"))


def test_pages_of_customers_by_cost_use_it_and_agree(org, spend, monkeypatch):
    period = Period(date(2026, 10, 30), TODAY, ZoneInfo("UTC"))
    calls = []
    real = top.top_customers_by_cost
    monkeypatch.setattr(
        "analytics.selectors.ranking.top_customers_by_cost",
        lambda **kwargs: calls.append(kwargs["k"]) or real(**kwargs),
    )
    everyone = full_ranking(org, period, 1000)
    page = selectors.spend_ranking(
        organization=org, period=period, by="customer", limit=10, offset=20
    )
    assert calls == [30]
    assert [row.key for row in page.rows] == everyone[20:30]
    assert page.count == len(everyone)
    assert "intruder" not in everyone
    of_o3 = full_ranking(org, period, 1000, UsageFilters(model="o3"))
    page = selectors.spend_ranking(
        organization=org,
        period=period,
        by="customer",
        filters=UsageFilters(model="o3"),
        limit=10,
        offset=5,
    )
    assert calls == [30, 15]
    assert [row.key for row in page.rows] == of_o3[5:15]
    assert page.count == len(of_o3)


def test_a_bound_that_never_closes_falls_back(org, spend, monkeypatch):
    monkeypatch.setattr(top, "MIN_DEPTH", 1)
    monkeypatch.setattr(top, "MAX_DEPTH", 1)
    period = Period(date(2026, 10, 30), TODAY, ZoneInfo("UTC"))
    assert top.top_customers_by_cost(organization=org, period=period, k=50) is None
    rows = selectors.spend_breakdown(organization=org, period=period, by="customer", limit=50)
    assert [row.key for row in rows] == full_ranking(org, period, 50)


def test_ties_at_zero_go_to_the_full_sum(org, spend, monkeypatch):
    """Unseen customers of an unpriced model tie at zero and win on their id:
    the bound can never settle that, so the ranking sums everything."""
    monkeypatch.setattr(top, "MIN_DEPTH", 1)
    period = Period(date(2026, 10, 30), TODAY, ZoneInfo("UTC"))
    scope = {"dimension": "model", "value": "mystery"}
    assert top.top_customers_by_cost(organization=org, period=period, k=3, **scope) is None
    filters = UsageFilters(model="mystery")
    rows = selectors.spend_breakdown(
        organization=org, period=period, by="customer", filters=filters, limit=3
    )
    assert [row.key for row in rows] == ["z00", "z01", "z02"]


def test_pages_of_customers_by_name_agree(org, spend):
    period = Period(date(2026, 10, 30), TODAY, ZoneInfo("UTC"))
    names = sorted(full_ranking(org, period, 1000))
    page = selectors.spend_ranking(
        organization=org, period=period, by="customer", order="name", limit=7, offset=14
    )
    assert [row.key for row in page.rows] == names[14:21]
    assert page.count == len(names)
    of_o3 = selectors.spend_ranking(
        organization=org,
        period=period,
        by="customer",
        order="name",
        filters=UsageFilters(model="o3"),
        limit=1000,
    )
    assert [row.key for row in of_o3.rows] == sorted(
        full_ranking(org, period, 1000, UsageFilters(model="o3"))
    )
