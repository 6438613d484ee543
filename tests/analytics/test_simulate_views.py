"""GET /api/simulate, /api/simulate/features and the Simulate pages."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics.formatting import money_text
from tests.analytics.test_api import bearer
from tests.analytics.test_simulator import bundled, price_data, priced  # noqa: F401 (fixtures)


@pytest.fixture
def usage(org, ingest, bundled):  # noqa: F811
    t = timezone.now() - timedelta(hours=1)
    return ingest(
        # gpt-4o ($2.50 / $10): 10,000 × 2.5 + 1,000 × 10 = 35,000 µ$.
        priced(
            org,
            t,
            provider="openai",
            model="gpt-4o",
            feature="chat",
            customer_id="c-1",
            input_tokens=10_000,
            output_tokens=1_000,
        ),
        priced(
            org,
            t,
            provider="openai",
            model="gpt-4o",
            feature="",
            customer_id="c-2",
            input_tokens=100,
            output_tokens=10,
        ),
    )


def test_simulate_a_feature_by_key(client, api_key, usage):
    response = client.get("/api/simulate", {"feature": "chat", "limit": "2000"}, **bearer(api_key))
    assert response.status_code == 200
    data = response.json()
    assert (data["scope"], data["value"], data["calls"]) == ("feature", "chat", 1)
    assert data["actual_cost"] == "0.0350000000"
    assert data["repriced_cost"] == "0.0350000000"
    assert data["largest_input_tokens"] == 10_000
    assert data["usage"][0]["input_tokens"] == 10_000
    listed = {c["model"]: c for c in data["no_benchmark_data"]["results"]}
    # gpt-4o-mini ($0.15 / $0.60): 1,500 + 600 µ$ = $0.0021; saves $0.0329 = 94.00 %.
    mini = listed["gpt-4o-mini"]
    assert (mini["projected_cost"], mini["saving"], mini["saving_percent"]) == (
        "0.0021000000",
        "0.0329000000",
        "94.00",
    )
    assert data["candidates"]["count"] == 0 and data["benchmarks_known"] is False
    assert all(c["model"] != "gpt-4o" for c in listed.values())


def test_untagged_feature_and_customer_scopes(client, api_key, usage):
    untagged = client.get("/api/simulate", {"feature": "(untagged)"}, **bearer(api_key)).json()
    assert (untagged["value"], untagged["calls"]) == ("(untagged)", 1)
    customer = client.get("/api/simulate", {"customer_id": "c-1"}, **bearer(api_key)).json()
    assert customer["actual_cost"] == "0.0350000000"


@pytest.mark.parametrize(
    "params, message",
    [
        ({"feature": "a", "model": "b"}, "at most one"),
        ({"max_score_drop": "lots"}, "max_score_drop"),
        ({"max_score_drop": "150"}, "between 0 and 100"),
        ({"limit": "0"}, "limit"),
        ({"scope": "feature"}, "Unknown parameter"),
    ],
)
def test_bad_parameters_say_what_is_wrong(client, api_key, params, message):
    response = client.get("/api/simulate", params, **bearer(api_key))
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_another_organization_sees_none_of_it(client, other_api_key, usage):
    data = client.get("/api/simulate", {"feature": "chat"}, **bearer(other_api_key)).json()
    assert (
        data["calls"] == 0
        and data["usage"] == []
        and data["actual_cost"] == "0E-10"
        or (data["actual_cost"] == "0.0000000000")
    )
    features = client.get("/api/simulate/features", **bearer(other_api_key)).json()
    assert features["results"] == []


def test_features_ranking_by_key(client, api_key, usage):
    data = client.get("/api/simulate/features", **bearer(api_key)).json()
    assert [(r["feature"], r["actual_cost"]) for r in data["results"]] == [
        ("chat", "0.0350000000"),
        ("(untagged)", "0.0003500000"),  # 100 × 2.5 + 10 × 10 = 350 µ$
    ]
    assert all(r["best"] is None for r in data["results"])  # no benchmark: nothing is safe


def test_simulate_pages(owner_client, usage):
    page = owner_client.get("/simulate/", {"scope": "feature", "value": "chat"})
    assert page.status_code == 200
    html = page.content.decode()
    # $0.035 by hand (see `usage`), shown in the product's money format.
    assert f'data-testid="actual-cost">{money_text(Decimal("0.035"))}<' in html
    assert html.count("<tr>") > 25  # candidates are listed
    assert 'id="no-benchmarks"' in html and "/admin/pricing/modelbenchmark/" in html
    assert "<script>" not in html  # CSP: scripts live in static files
    bulk = owner_client.get("/simulate/features/")
    assert bulk.status_code == 200 and "chat" in bulk.content.decode()
    assert owner_client.get("/simulate/", {"scope": "feature"}).status_code == 400
    assert owner_client.get("/simulate/", {"scope": "planet"}).status_code == 400


def test_simulate_page_needs_login(client):
    assert client.get("/simulate/").status_code == 302


def test_money_in_the_api_is_exact(client, api_key, usage):
    data = client.get("/api/simulate", **bearer(api_key)).json()
    assert Decimal(data["actual_cost"]) == Decimal("0.035") + Decimal("0.00035")
