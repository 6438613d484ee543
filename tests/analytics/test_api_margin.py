"""/api/customers and /api/costs/by-*/: revenue, margin and margin % (issue 13),
sorted and filtered by margin, and every answer valid against /api/schema."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests
import schemathesis
from django.utils import timezone
from schemathesis.core.transport import Response as SchemaResponse

from tests.analytics.conftest import call
from tests.analytics.test_api import bearer
from tests.analytics.test_margin_pages import margins, month  # noqa: F401 (fixtures)
from tests.factories import RevenueEntryFactory


@pytest.fixture
def more_margins(margins, org, other_org, ingest):  # noqa: F811
    """test_margin_pages' customers (this month to date: paying $300 − $120 = $180,
    60 %; thin $100 − $85 = $15, 15 %; losing $30 − $50 = −$20, −66.67 %; silent
    $9, no revenue), plus: no-calls $10 − $0 = $10 (100 %); untagged $1, no
    revenue; and another organization's revenue for the same ids, which never counts."""
    first, today = margins
    now = timezone.now()
    ingest(
        call(org, now, cost="1.0000000000"),
        call(other_org, now, cost="7.0000000000", customer_id="losing"),
    )
    for organization, customer, amount in (
        (org, "no-calls", 10),
        (other_org, "losing", 1000),
        (other_org, "silent", 5),
    ):
        RevenueEntryFactory(
            organization=organization,
            customer_id=customer,
            amount=Decimal(amount),
            period_start=first,
            period_end=today,
        )
    return {"start_date": str(first), "end_date": str(today)}


@pytest.fixture
def schema(client, api_key):
    document = client.get("/api/schema", {"format": "json"}, **bearer(api_key))
    assert document.status_code == 200
    return schemathesis.openapi.from_dict(json.loads(document.content))


def validate(schema, template: str, content: bytes) -> None:
    """Validate a 200 body against the operation's documented response
    (schemathesis raises on any disagreement)."""
    schema[template]["GET"].validate_response(
        SchemaResponse(
            status_code=200,
            headers={"content-type": ["application/json"]},
            content=content,
            request=requests.Request("GET", "http://testserver/").prepare(),
            elapsed=0.0,
            verify=True,
        )
    )


@pytest.fixture
def get(client, api_key, schema):
    """GET a path with the key, assert 200 and a body valid against the schema."""

    def fetch(path: str, template: str | None = None, **params):
        response = client.get(path, params, **bearer(api_key))
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == "application/json"
        validate(schema, template or path, response.content)
        return response.json()

    return fetch


def _ids(body) -> list[str]:
    return [row["customer_id"] for row in body["results"]]


def test_customers_list_carries_margin_and_matches_its_schema(get, more_margins):
    body = get("/api/customers", **more_margins)
    rows = {row["customer_id"]: row for row in body["results"]}
    assert (rows["paying"]["revenue"], rows["paying"]["margin"]) == (
        "300.0000000000",
        "180.0000000000",
    )
    assert rows["paying"]["margin_percent"] == "60.00"
    assert (rows["losing"]["margin"], rows["losing"]["margin_percent"]) == (
        "-20.0000000000",
        "-66.67",
    )
    for unknown in ("silent", "(untagged)"):  # null, never 0
        assert [rows[unknown][f] for f in ("revenue", "margin", "margin_percent")] == [None] * 3
    # The cost order counts callers only (as before); a margin order adds paying non-callers.
    assert _ids(body) == ["paying", "thin", "losing", "silent", "(untagged)"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("margin", ["losing", "no-calls", "thin", "paying", "(untagged)", "silent"]),
        ("margin_percent", ["losing", "thin", "paying", "no-calls", "(untagged)", "silent"]),
        ("revenue", ["paying", "thin", "losing", "no-calls", "(untagged)", "silent"]),
    ],
)
def test_customers_sorted_by_margin(get, more_margins, sort, expected):
    body = get("/api/customers", sort=sort, **more_margins)
    assert _ids(body) == expected and body["count"] == 6
    # Ranked on cost alone, then every counter summed for the page: one call of
    # 100 + 10 tokens each (tests.analytics.conftest.call), none for no-calls.
    counters = {r["customer_id"]: (r["calls"], r["tokens"], r["cost"]) for r in body["results"]}
    assert counters["no-calls"] == (0, 0, "0.0000000000")
    assert counters["thin"] == (1, 110, "85.0000000000")
    assert {c[:2] for k, c in counters.items() if k != "no-calls"} == {(1, 110)}
    page_2 = get("/api/customers", sort=sort, per_page=4, page=2, **more_margins)
    assert _ids(page_2) == expected[4:] and page_2["pages"] == 2


def test_customers_filtered_by_profit(get, more_margins):
    assert _ids(get("/api/customers", profit="unprofitable", **more_margins)) == ["losing"]
    thin = get("/api/customers", profit="thin", **more_margins)  # below 20 %: thin (15 %), losing
    assert _ids(thin) == ["thin", "losing"] and thin["count"] == 2
    for sort in ("margin", "name"):
        assert _ids(get("/api/customers", profit="thin", sort=sort, **more_margins)) == [
            "losing",
            "thin",
        ]
    assert _ids(get("/api/customers", profit="thin", q="thi", **more_margins)) == ["thin"]


def test_bad_margin_parameters_are_400s_that_say_which(client, api_key, more_margins):
    for params, word in (({"profit": "bogus"}, "profit"), ({"sort": "profit"}, "sort")):
        response = client.get("/api/customers", params, **bearer(api_key))
        assert response.status_code == 400 and word in response.json()["detail"]
    # Margin is a customers thing: features and models refuse it.
    response = client.get("/api/features", {"sort": "margin"}, **bearer(api_key))
    assert response.status_code == 400
    response = client.get("/api/models", {"profit": "thin"}, **bearer(api_key))
    assert response.status_code == 400


def test_detail_pages_match_their_schema(get, api_key, more_margins):
    customer = "/api/costs/by-customer/{value}"
    paying = get("/api/costs/by-customer/paying", customer, **more_margins)
    assert (paying["customer_id"], paying["revenue"], paying["margin_percent"]) == (
        "paying",
        "300.0000000000",
        "60.00",
    )
    silent = get("/api/costs/by-customer/silent", customer, **more_margins)
    assert silent["revenue"] is None and silent["margin"] is None
    model = get("/api/costs/by-model/gpt-4o", "/api/costs/by-model/{value}")
    assert model["model"] == "gpt-4o" and "revenue" not in model
    feature = get("/api/costs/by-feature/(untagged)", "/api/costs/by-feature/{value}")
    assert feature["feature"] == "(untagged)" and feature["calls"] == 5
    key = get(f"/api/costs/by-key/{api_key.row.pk}", "/api/costs/by-key/{value}")
    assert key["key_id"] == api_key.row.pk and key["label"].startswith("test key")


def test_the_schema_catches_a_disagreement(client, api_key, schema, more_margins):
    """The check above is real: a body without the margin fields fails it."""
    body = client.get("/api/customers", more_margins, **bearer(api_key)).json()
    for row in body["results"]:
        del row["margin_percent"]
    with pytest.raises(Exception, match="margin_percent"):
        validate(schema, "/api/customers", json.dumps(body).encode())
