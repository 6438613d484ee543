"""/api/customers sorts by every column of the customers page (issues 12, 13),
and margin rankings take the filter bar's filters (cost counts the calls the
filters keep, against the customer's whole revenue). Expected values are
hand-computed from the calls written below; every API answer is checked
against /api/schema."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics.periods import Period, org_today, org_zone
from analytics.selectors import Totals
from analytics.selectors.tables import ONE_READ_DAYS, page_trend
from tests.analytics.conftest import call
from tests.analytics.test_api_margin import get, schema  # noqa: F401 (fixtures)
from tests.factories import RevenueEntryFactory


@pytest.fixture
def customers(org, other_org, ingest):
    """The last 10 days (and the 10 before them), this organization:

    | customer | calls now (feature, plan, cost)        | before | revenue |
    |----------|----------------------------------------|--------|---------|
    | alpha    | chat free $10, search pro $30          | $20    | $25     |
    | beta     | chat free $10, chat free $10           | $40    | $30     |
    | delta    | search free $5 (1,000 input tokens)    | —      | —       |
    | gamma    | —                                      | —      | $5      |

    Each call has 100 input + 10 output tokens unless said. Another
    organization uses the same ids (and zeta) with big numbers: never counted.
    """
    now = timezone.now()
    before = now - timedelta(days=12)
    today = org_today(org)
    start = today - timedelta(days=9)

    def at(when, customer, feature, plan, cost, organization=org, **extra):
        return call(
            organization,
            when,
            customer_id=customer,
            feature=feature,
            cost=cost,
            properties={"plan": plan},
            **extra,
        )

    ingest(
        at(now, "alpha", "chat", "free", "10.0000000000"),
        at(now, "alpha", "search", "pro", "30.0000000000"),
        at(before, "alpha", "chat", "free", "20.0000000000"),
        at(now, "beta", "chat", "free", "10.0000000000"),
        at(now, "beta", "chat", "free", "10.0000000000"),
        at(before, "beta", "chat", "free", "40.0000000000"),
        at(now, "delta", "search", "free", "5.0000000000", input_tokens=1000),
        at(now, "alpha", "chat", "pro", "1000.0000000000", organization=other_org),
        at(now, "zeta", "chat", "pro", "1.0000000000", organization=other_org),
    )
    for organization, customer, amount in (
        (org, "alpha", 25),
        (org, "beta", 30),
        (org, "gamma", 5),
        (other_org, "beta", 1000),
        (other_org, "zeta", 7),
    ):
        RevenueEntryFactory(
            organization=organization,
            customer_id=customer,
            amount=Decimal(amount),
            period_start=start,
            period_end=today,
        )
    return {"start_date": str(start), "end_date": str(today)}


def _ids(body) -> list[str]:
    return [row["customer_id"] for row in body["results"]]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("cost", ["alpha", "beta", "delta"]),  # 40, 20, 5
        ("calls", ["alpha", "beta", "delta"]),  # 2, 2 (tie: by id), 1
        ("tokens", ["delta", "alpha", "beta"]),  # 1,010, 220, 220
        ("avg_cost", ["alpha", "beta", "delta"]),  # 20, 10, 5
        ("change", ["delta", "alpha", "beta"]),  # new, +100 %, −50 %
        ("name", ["alpha", "beta", "delta"]),
    ],
)
def test_customers_sort_by_every_page_column(get, customers, sort, expected):  # noqa: F811
    body = get("/api/customers", sort=sort, **customers)
    assert _ids(body) == expected and body["count"] == 3
    rows = {row["customer_id"]: row for row in body["results"]}
    assert (rows["alpha"]["previous_cost"], rows["alpha"]["change"]) == (
        "20.0000000000",
        "1.0000",
    )
    assert rows["beta"]["change"] == "-0.5000"
    assert (rows["delta"]["previous_cost"], rows["delta"]["change"]) == ("0.0000000000", None)
    assert rows["alpha"]["avg_cost_per_call"] == "20.0000000000"
    assert rows["alpha"]["margin"] == "-15.0000000000"  # never the other org's numbers


def test_features_sort_by_change_and_tokens(get, customers):  # noqa: F811
    # chat: $30 now against $60 before (−50 %); search: $35, new.
    body = get("/api/features", sort="change", **customers)
    assert [row["feature"] for row in body["results"]] == ["search", "chat"]
    assert [row["change"] for row in body["results"]] == [None, "-0.5000"]
    tokens = get("/api/features", sort="tokens", **customers)  # search 1,120; chat 330
    assert [row["feature"] for row in tokens["results"]] == ["search", "chat"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # margins: alpha 25 − 40 = −15, gamma 5 − 0 = 5, beta 30 − 20 = 10, delta unknown
        ({"sort": "margin"}, ["alpha", "gamma", "beta", "delta"]),
        # chat only: alpha 25 − 10 = 15, beta 30 − 20 = 10; delta and gamma have no chat call
        ({"sort": "margin", "feature": "chat"}, ["beta", "alpha"]),
        ({"sort": "revenue", "feature": "chat"}, ["beta", "alpha"]),
        ({"sort": "margin_percent", "feature": "chat"}, ["beta", "alpha"]),  # 33 %, 60 %
        ({"profit": "unprofitable"}, ["alpha"]),
        ({"profit": "unprofitable", "feature": "chat"}, []),
        # read from the events: alpha's $30 pro call against its $25
        ({"profit": "unprofitable", "property": "plan:pro"}, ["alpha"]),
        ({"sort": "margin", "customer_id": "beta"}, ["beta"]),
        # below 20 %: alpha (−60 %); with its search calls only (1 model): still alpha
        ({"profit": "thin", "model": "gpt-4o"}, ["alpha"]),
        # search only: alpha 25 − 30 = −5 (−20 %); delta has no revenue
        ({"profit": "thin", "sort": "change", "feature": "search"}, ["alpha"]),
    ],
)
def test_margin_rankings_take_filters(get, customers, params, expected):  # noqa: F811
    body = get("/api/customers", **params, **customers)
    assert _ids(body) == expected and body["count"] == len(expected)


def test_filtered_margin_is_revenue_less_the_kept_cost(get, customers):  # noqa: F811
    body = get("/api/customers", sort="margin", feature="chat", **customers)
    alpha = next(row for row in body["results"] if row["customer_id"] == "alpha")
    assert (alpha["cost"], alpha["calls"], alpha["revenue"], alpha["margin"]) == (
        "10.0000000000",
        1,
        "25.0000000000",
        "15.0000000000",
    )
    assert alpha["margin_percent"] == "60.00"
    assert (alpha["previous_cost"], alpha["change"]) == ("20.0000000000", "-0.5000")


def _table(client, **params) -> str:
    html = client.get("/customers/", params).content.decode()
    return html[html.index('id="dimension-table"') :]


def test_customers_page_ranks_margins_under_filters(owner_client, customers):
    table = _table(owner_client, sort="margin", feature="chat", **customers)
    assert table.index("/customers/beta/") < table.index("/customers/alpha/")
    assert "/customers/delta/" not in table and "/customers/gamma/" not in table
    page = owner_client.get("/customers/", {"sort": "margin", "feature": "chat", **customers})
    assert 'id="margin-filtered"' in page.content.decode()
    plain = owner_client.get("/customers/", {"sort": "margin", **customers}).content.decode()
    assert 'id="margin-filtered"' not in plain and "/customers/gamma/" in plain
    losing = _table(owner_client, profit="unprofitable", property="plan:pro", **customers)
    assert "/customers/alpha/" in losing and "/customers/beta/" not in losing


def test_another_organization_never_appears(get, customers):  # noqa: F811
    for params in ({}, {"sort": "margin"}, {"sort": "change"}, {"profit": "thin"}):
        body = get("/api/customers", **params, **customers)
        assert "zeta" not in _ids(body)
        rows = {row["customer_id"]: row for row in body["results"]}
        assert rows.get("beta", {}).get("revenue") in (None, "30.0000000000")


@pytest.mark.parametrize("days", [10, ONE_READ_DAYS + 8])
def test_page_trend_is_the_hand_computed_sums(org, customers, days):
    """One read of both periods' days (up to ONE_READ_DAYS) or two reads: the
    same sparkline sums and previous costs. Over 100 days, the calls 12 days
    ago are inside the period, so nothing was spent before it."""
    today = org_today(org)
    period = Period(today - timedelta(days=days - 1), today, org_zone(org))
    rows = [Totals(key=key) for key in ("alpha", "beta", "delta", "nobody")]
    trend = page_trend(organization=org, period=period, by="customer", rows=rows)
    sums = {key: sum(values) for key, values in trend.sparklines.items()}
    if days == 10:
        assert sums == {"alpha": 40, "beta": 20, "delta": 5, "nobody": 0}
        assert trend.previous == {"alpha": 20, "beta": 40, "delta": 0, "nobody": 0}
    else:
        assert sums == {"alpha": 60, "beta": 60, "delta": 5, "nobody": 0}
        assert trend.previous == {"alpha": 0, "beta": 0, "delta": 0, "nobody": 0}
    assert {len(values) for values in trend.sparklines.values()} == {days}
