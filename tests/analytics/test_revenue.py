"""Revenue import (REST and CSV rules), spreading over days, margins: hand-computed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from accounts.models import Scope
from accounts.services import api_key_issue
from analytics.models import RevenueEntry
from analytics.periods import Period
from analytics.revenue import CsvError, revenue_csv_check
from analytics.selectors.revenue import (
    customer_forecast,
    customer_pnl_monthly,
    customers_with_margin,
    margin_of,
    revenue_by_customer,
    unprofitable_this_month,
)
from tests.analytics.conftest import call
from tests.analytics.test_api import bearer
from tests.factories import RevenueEntryFactory

UTCZ = ZoneInfo("UTC")
NOV = Period(date(2026, 11, 1), date(2026, 11, 30), UTCZ)


@pytest.fixture
def manage_key(org, owner):
    from tests.conftest import IssuedKey

    row, raw = api_key_issue(
        organization=org, name="manage", scopes=[Scope.READ, Scope.MANAGE], created_by=owner
    )
    return IssuedKey(row=row, raw=raw)


def entry(customer_id="c1", amount="300.00", start="2026-11-01", end="2026-11-30", ext="inv-1"):
    return {
        "customer_id": customer_id,
        "amount": amount,
        "period_start": start,
        "period_end": end,
        "external_id": ext,
    }


def post(client, key, rows):
    return client.post("/api/revenue", rows, content_type="application/json", **bearer(key))


def test_post_creates_then_replaces_and_reports_each_bad_row(client, org, manage_key):
    first = post(
        client, manage_key, [entry(), entry("c2", "31", "2026-10-15", "2026-11-14", "inv-2")]
    )
    assert first.status_code == 200
    assert first.json() == {"created": 2, "updated": 0, "rejected": 0, "errors": []}
    again = post(
        client,
        manage_key,
        [
            entry(amount="310.00"),  # same external_id: replaces
            entry(amount="abc", ext="inv-3"),
            entry(start="2026-12-01", ext="inv-4"),
            {
                "customer_id": "c9",
                "amount": "1",
                "period_start": "2026-11-01",
                "period_end": "2026-11-01",
            },
            entry(ext="inv-1"),  # repeats row 0 of this batch
            "not an object",
            {**entry(ext="inv-5"), "currency": "EUR"},
        ],
    )
    body = again.json()
    assert (body["created"], body["updated"], body["rejected"]) == (0, 1, 6)
    assert [(e["row"], e["reason"]) for e in body["errors"]] == [
        (1, "amount must be a number in USD, got 'abc'"),
        (2, "period_end (2026-11-30) is before period_start (2026-12-01)"),
        (3, "external_id is required"),
        (4, "external_id repeats row 0"),
        (
            5,
            "each row must be an object with customer_id, amount, period_start, period_end, "
            "external_id",
        ),
        (6, "unknown field 'currency'"),
    ]
    assert RevenueEntry.objects.get(organization=org, external_id="inv-1").amount == Decimal("310")
    assert RevenueEntry.objects.filter(organization=org).count() == 2


def test_post_needs_the_manage_scope(client, api_key, member_client):
    refused = post(client, api_key, [entry()])  # proxy + read only
    assert refused.status_code == 403 and "manage" in refused.json()["detail"]
    member = member_client.post("/api/revenue", [entry()], content_type="application/json")
    assert member.status_code == 403
    assert RevenueEntry.objects.count() == 0


def test_a_manage_only_key_writes_and_a_read_only_key_is_refused(client, org, owner):
    """The issue asks for the `manage` scope: alone it writes (not reads); `read` alone
    is refused with the API's 403 ({"detail": …}), nothing saved."""
    from tests.conftest import IssuedKey

    keys = {
        scopes: IssuedKey(
            *api_key_issue(organization=org, name="k", scopes=list(scopes), created_by=owner)
        )
        for scopes in ((Scope.MANAGE,), (Scope.READ,), (Scope.PROXY,))
    }
    manage, read, proxy = keys.values()
    created = post(client, manage, [entry()])
    assert created.status_code == 200 and created.json()["created"] == 1
    (saved,) = RevenueEntry.objects.filter(organization=org)
    for key in (read, proxy):
        refused = post(client, key, [entry(ext="inv-9")])
        assert refused.status_code == 403 and refused["Content-Type"] == "application/json"
        assert "manage" in refused.json()["detail"]
        gone = client.delete(f"/api/revenue/{saved.pk}", **bearer(key))
        assert gone.status_code == 403 and "manage" in gone.json()["detail"]
    # manage alone does not read: reads need `read`.
    listed = client.get("/api/revenue", **bearer(manage))
    assert listed.status_code == 403 and "read" in listed.json()["detail"]
    assert client.get("/api/costs/summary", **bearer(manage)).status_code == 403
    assert list(RevenueEntry.objects.filter(organization=org)) == [saved]
    assert client.delete(f"/api/revenue/{saved.pk}", **bearer(manage)).status_code == 204
    assert not RevenueEntry.objects.filter(organization=org).exists()


def test_post_body_must_be_a_list(client, manage_key):
    response = client.post(
        "/api/revenue", {"customer_id": "x"}, content_type="application/json", **bearer(manage_key)
    )
    assert response.status_code == 400 and "JSON list" in response.json()["detail"]


def test_get_and_delete_are_tenant_scoped(client, org, manage_key, other_api_key):
    post(client, manage_key, [entry()])
    (listed,) = client.get("/api/revenue", **bearer(manage_key)).json()["results"]
    assert listed["amount"] == "300.0000000000" and listed["source"] == "api"
    assert client.get("/api/revenue", **bearer(other_api_key)).json()["results"] == []
    url = f"/api/revenue/{listed['id']}"
    # Another organization: the same 404 as a missing id, for reads and deletes.
    assert client.get(url, **bearer(other_api_key)).status_code == 404
    assert client.get("/api/revenue/999999", **bearer(manage_key)).status_code == 404
    assert client.delete(url, **bearer(other_api_key)).status_code in (403, 404)
    assert RevenueEntry.objects.filter(pk=listed["id"]).exists()
    assert client.delete(url, **bearer(manage_key)).status_code == 204
    assert client.delete(url, **bearer(manage_key)).status_code == 404


def test_revenue_is_spread_evenly_over_its_days(org):
    # $31 for Oct 15 – Nov 14 (31 days): $1 a day; November holds Nov 1–14: $14.
    # $300 for November: all of it. $90 for Q4 (Oct 1 – Dec 31, 92 days): 30/92 of it.
    for n, (customer, amount, start, end) in enumerate(
        [
            ("c1", "31", date(2026, 10, 15), date(2026, 11, 14)),
            ("c1", "300", date(2026, 11, 1), date(2026, 11, 30)),
            ("c2", "92", date(2026, 10, 1), date(2026, 12, 31)),
        ]
    ):
        RevenueEntry.objects.create(
            organization=org,
            customer_id=customer,
            amount=Decimal(amount),
            period_start=start,
            period_end=end,
            source="api",
            external_id=f"e{n}",
        )
    assert revenue_by_customer(organization=org, period=NOV) == {
        "c1": Decimal("314.0000000000"),
        "c2": Decimal("30.0000000000"),
    }
    week = Period(date(2026, 11, 10), date(2026, 11, 16), UTCZ)
    # c1: Nov 10–14 of the $1/day entry ($5) + 7/30 of $300 ($70); c2: 7 days at $1.
    assert revenue_by_customer(organization=org, period=week) == {
        "c1": Decimal("75.0000000000"),
        "c2": Decimal("7.0000000000"),
    }


def test_margins_by_hand(org, ingest):
    at = datetime(2026, 11, 5, 12, tzinfo=UTC)
    ingest(
        call(org, at, cost="120.0000000000", customer_id="paying"),
        call(org, at, cost="50.0000000000", customer_id="losing"),
        call(org, at, cost="9.0000000000", customer_id="no-revenue"),
    )
    for customer, amount in (("paying", "300"), ("losing", "30"), ("no-calls", "10")):
        RevenueEntry.objects.create(
            organization=org,
            customer_id=customer,
            amount=Decimal(amount),
            period_start=date(2026, 11, 1),
            period_end=date(2026, 11, 30),
            source="csv",
            external_id=customer,
        )
    rows = {r.totals.key: r.margin for r in customers_with_margin(organization=org, period=NOV)}
    # paying: 300 − 120 = 180, 60 %; losing: 30 − 50 = −20, −66.67 %.
    assert (rows["paying"].margin, rows["paying"].margin_percent) == (
        Decimal(180),
        Decimal("60.00"),
    )
    assert (rows["losing"].margin, rows["losing"].margin_percent) == (
        Decimal(-20),
        Decimal("-66.67"),
    )
    assert rows["losing"].unprofitable and rows["losing"].thin(Decimal(20))
    assert not rows["paying"].thin(Decimal(20))
    # No revenue known: null, never 0.
    assert rows["no-revenue"] == margin_of(None, Decimal(9))
    assert rows["no-revenue"].revenue is None and rows["no-revenue"].margin is None
    # Paying without calls: all margin.
    assert (rows["no-calls"].cost, rows["no-calls"].margin_percent) == (0, Decimal("100.00"))
    card = unprofitable_this_month(organization=org, now=datetime(2026, 11, 30, 18, tzinfo=UTC))
    assert (card.count, card.loss) == (1, Decimal(-20))
    pnl = customer_pnl_monthly(
        organization=org, customer_id="losing", months=2, now=datetime(2026, 11, 30, 18, tzinfo=UTC)
    )
    assert [(m.month, m.revenue, m.cost, m.margin) for m in pnl] == [
        (date(2026, 10, 1), None, Decimal(0), None),
        (date(2026, 11, 1), Decimal(30), Decimal(50), Decimal(-20)),
    ]


def test_another_organizations_revenue_never_counts(org, other_org, ingest):
    RevenueEntry.objects.create(
        organization=other_org,
        customer_id="c1",
        amount=Decimal(100),
        period_start=date(2026, 11, 1),
        period_end=date(2026, 11, 30),
        source="api",
        external_id="x",
    )
    assert revenue_by_customer(organization=org, period=NOV) == {}
    assert customers_with_margin(organization=org, period=NOV) == []


def test_csv_lines_are_checked_with_their_line_numbers():
    text = (
        "customer_id,amount,period_start,period_end,external_id\n"
        "c1,10,2026-11-01,2026-11-30,a\n"
        "c2,ten,2026-11-01,2026-11-30,b\n"
        "c3,1,2026-11-01,2026-11-30,a\n"
        "c4,1,2026-11-01,2026-11-30,d,extra\n"
    )
    check = revenue_csv_check(text)
    assert [n for n, _ in check.rows] == [2]
    assert [(r.row, r.reason) for r in check.rejected] == [
        (3, "amount must be a number in USD, got 'ten'"),
        (4, "external_id repeats line 2"),
        (5, "more values than columns"),
    ]
    with pytest.raises(CsvError, match="missing external_id"):
        revenue_csv_check("customer_id,amount,period_start,period_end\n")


def test_customers_api_gains_revenue_and_margin_null_where_unknown(client, org, api_key, ingest):
    from django.utils import timezone

    now = timezone.now()
    today = now.date()
    ingest(
        call(org, now, cost="40.0000000000", customer_id="paying"),
        call(org, now, cost="5.0000000000", customer_id="unknown"),
    )
    RevenueEntry.objects.create(
        organization=org,
        customer_id="paying",
        amount=Decimal(100),
        period_start=today,
        period_end=today,
        source="api",
        external_id="p",
    )
    rows = {
        r["customer_id"]: r
        for r in client.get(
            "/api/customers", {"start_date": str(today), "end_date": str(today)}, **bearer(api_key)
        ).json()["results"]
    }
    assert (
        rows["paying"]["revenue"],
        rows["paying"]["margin"],
        rows["paying"]["margin_percent"],
    ) == (
        "100.0000000000",
        "60.0000000000",
        "60.00",
    )
    assert (rows["unknown"]["revenue"], rows["unknown"]["margin"]) == (None, None)
    assert rows["unknown"]["margin_percent"] is None
    detail = client.get(
        "/api/costs/by-customer/paying", {"start_date": str(today)}, **bearer(api_key)
    ).json()
    assert (detail["revenue"], detail["margin"], detail["margin_percent"]) == (
        "100.0000000000",
        "60.0000000000",
        "60.00",
    )
    other = client.get("/api/costs/by-customer/unknown", **bearer(api_key)).json()
    assert other["revenue"] is None and other["margin"] is None


def test_customer_forecast_by_hand(org, ingest):
    """acme: $10 a day on Nov 1–7, $3 on Nov 8; now Nov 8 noon (UTC org): 22.5 days
    left, so $73 + $10 × 22.5 = $298 against November's $200: −$98."""
    ingest(
        *(call(org, datetime(2026, 11, d, 10, tzinfo=UTC), cost="10", customer_id="acme")
          for d in range(1, 8)),
        call(org, datetime(2026, 11, 8, 1, tzinfo=UTC), cost="3", customer_id="acme"),
        call(org, datetime(2026, 11, 5, 1, tzinfo=UTC), cost="70", customer_id="other"),
    )  # fmt: skip
    RevenueEntryFactory(
        organization=org,
        customer_id="acme",
        amount=Decimal(200),
        period_start=date(2026, 11, 1),
        period_end=date(2026, 11, 30),
    )
    now = datetime(2026, 11, 8, 12, tzinfo=UTC)
    acme = customer_forecast(organization=org, customer_id="acme", now=now)
    assert (acme.projected_cost, acme.projected_revenue, acme.projected_margin) == (
        Decimal(298),
        Decimal(200),
        Decimal(-98),
    )
    other = customer_forecast(organization=org, customer_id="other", now=now)
    # No revenue known: null, never 0. $70 so far + ($70 / 7) a day × 22.5 days.
    assert other.projected_revenue is None and other.projected_margin is None
    assert other.projected_cost == Decimal(295)
