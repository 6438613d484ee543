"""The read API: shapes, money as strings, pagination, and 400s that say what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from analytics.api.schemas import RecordSchema
from analytics.models import Status
from analytics.selectors import RECORD_FIELDS
from tests.analytics.conftest import call


def bearer(api_key) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {api_key.raw}"}


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def spend(org, api_key, ingest, now):
    """Five calls today (UTC org) across two models, customers and a trace: five
    minutes ago, or at midnight in the day's first five minutes (a run just
    after midnight had put them in yesterday, and the daily series failed)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    t = max(now - timedelta(minutes=5), midnight)
    return ingest(
        call(org, t, cost="0.1000000001", customer_id="c-1", feature="chat", trace_id="tr-9"),
        call(org, t, cost="0.2000000002", customer_id="c-1", feature="chat", trace_id="tr-9"),
        call(
            org,
            t,
            cost="1.0000000000",
            model="claude-opus-4",
            provider="anthropic",
            customer_id="c/2 spaced",
            feature="search",
            api_key_id=api_key.row.pk,
        ),
        call(org, t, cost=None, model="mystery", status=Status.UPSTREAM_ERROR),
        call(org, t - timedelta(seconds=1), cost="0.0000000007"),
    )


def test_api_needs_a_key_or_session(client, api_key):
    assert client.get("/api/costs/summary").status_code in (401, 403)
    response = client.get("/api/costs/summary", HTTP_AUTHORIZATION="Bearer ask_nope_nope_nope_nope")
    assert response.status_code == 401


def test_key_without_read_scope_is_refused(client, org, owner):
    from accounts.models import Scope
    from accounts.services import api_key_issue

    _, raw = api_key_issue(
        organization=org, name="proxy only", scopes=[Scope.PROXY], created_by=owner
    )
    response = client.get("/api/costs/summary", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 403
    assert "read" in response.json()["detail"]


def test_summary_by_key_and_by_session(client, owner_client, api_key, spend):
    data = client.get("/api/costs/summary", **bearer(api_key)).json()
    assert data["total_cost"] == "1.3000000010"
    assert data["total_calls"] == 5
    assert data["total_tokens"] == 5 * 110
    assert data["unpriced_calls"] == 1 and data["error_calls"] == 1
    assert data["currency"] == "USD" and data["timezone"] == "UTC"
    assert data["by_model"][0] == {
        "model": "claude-opus-4",
        "cost": "1.0000000000",
        "calls": 1,
        "tokens": 110,
        "input_tokens": 100,
        "output_tokens": 10,
        "unpriced_calls": 0,
        "error_calls": 0,
        "avg_cost_per_call": "1.0000000000",
    }
    assert [r["provider"] for r in data["by_provider"]] == ["anthropic", "openai"]
    assert {r["customer_id"] for r in data["by_customer"]} == {"c-1", "c/2 spaced", "(untagged)"}
    assert {r["feature"] for r in data["by_feature"]} == {"chat", "search", "(untagged)"}
    assert {r["key_id"] for r in data["by_key"]} == {0, api_key.row.pk}
    assert data["previous"]["total_cost"] == "0.0000000000" and data["change"] is None
    assert owner_client.get("/api/costs/summary").json()["total_cost"] == "1.3000000010"


def test_summary_with_filter(client, api_key, spend):
    data = client.get("/api/costs/summary?customer_id=c-1", **bearer(api_key)).json()
    assert data["total_cost"] == "0.3000000003"


def test_daily_is_zero_filled_with_series(client, api_key, spend, now):
    start = (now - timedelta(days=3)).date().isoformat()
    end = now.date().isoformat()
    response = client.get(
        f"/api/costs/daily?start_date={start}&end_date={end}&group_by=model", **bearer(api_key)
    )
    data = response.json()
    assert [d["date"] for d in data["days"]][0] == start
    assert len(data["days"]) == 4
    assert [d["cost"] for d in data["days"]][:3] == ["0.0000000000"] * 3
    assert data["days"][-1]["cost"] == "1.3000000010"
    assert data["series"]["claude-opus-4"][-1] == "1.0000000000"


def test_records_shape_filters_and_keyset_pages(client, api_key, spend):
    response = client.get("/api/costs?limit=2", **bearer(api_key))
    data = response.json()
    assert set(data) == {"results", "next"}
    first = data["results"][0]
    assert list(first) == list(RECORD_FIELDS) == list(RecordSchema().fields)
    assert first["id"].startswith("req_t")
    seen = [r["id"] for r in data["results"]]
    next_url = data["next"]
    while next_url:
        assert "cursor=" in next_url and "limit=2" in next_url
        page = client.get(next_url, **bearer(api_key)).json()
        seen += [r["id"] for r in page["results"]]
        next_url = page["next"]
    assert sorted(seen) == sorted(r.request_id for r in spend)
    assert len(seen) == 5

    one = client.get("/api/costs?customer_id=c/2 spaced", **bearer(api_key)).json()["results"]
    assert len(one) == 1
    assert one[0]["cost"] == "1.0000000000"
    assert one[0]["api_key"] == api_key.row.prefix
    traced = client.get("/api/costs?trace_id=tr-9", **bearer(api_key)).json()["results"]
    assert len(traced) == 2
    untagged = client.get("/api/costs?customer_id=(untagged)", **bearer(api_key)).json()
    assert len(untagged["results"]) == 2
    errors = client.get("/api/costs?status=upstream_error", **bearer(api_key)).json()
    assert [r["priced"] for r in errors["results"]] == [False]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("/api/costs/summary?start_date=2026-13-01", "start_date must be an ISO date"),
        ("/api/costs/summary?start_date=2026-05-02&end_date=2026-05-01", "before start_date"),
        ("/api/costs/daily?start_date=2025-01-01&end_date=2026-03-01", "at most 400 days"),
        ("/api/costs/summary?colour=blue", "Unknown parameter 'colour'"),
        ("/api/costs?limit=1001", "limit must be between 1 and 1000"),
        ("/api/costs?limit=ten", "limit must be a whole number"),
        ("/api/costs?status=fine", "status must be one of"),
        ("/api/costs?cursor=%%%", "cursor is not one this API issued"),
        ("/api/costs/daily?group_by=colour", "group_by must be one of"),
        ("/api/customers?sort=price", "sort must be one of"),
        ("/api/costs/export?format=xml", "format must be one of csv, json"),
        ("/api/costs/summary?trace_id=x", "Unknown parameter 'trace_id'"),
        ("/api/costs/by-model/gpt-4o?limit=3", "Unknown parameter 'limit'"),
    ],
)
def test_bad_parameters_are_400_with_a_message(client, api_key, spend, query, fragment):
    response = client.get(query, **bearer(api_key))
    assert response.status_code == 400, response.content
    assert fragment in response.json()["detail"]


def test_detail_endpoints(client, api_key, spend):
    data = client.get("/api/costs/by-customer/c-1", **bearer(api_key)).json()
    assert data["customer_id"] == "c-1"
    assert data["cost"] == "0.3000000003" and data["calls"] == 2
    assert data["avg_cost_per_call"] == "0.1500000002"  # 0.15000000015 rounded half-even
    assert data["breakdowns"]["model"][0]["model"] == "gpt-4o"
    assert len(data["daily"]) == 30 and len(data["recent"]) == 2

    spaced = client.get("/api/costs/by-customer/c/2 spaced", **bearer(api_key))
    assert spaced.status_code == 200 and spaced.json()["calls"] == 1
    untagged = client.get("/api/costs/by-customer/(untagged)", **bearer(api_key)).json()
    assert untagged["calls"] == 2
    assert client.get("/api/costs/by-model/claude-opus-4", **bearer(api_key)).json()["calls"] == 1
    assert client.get("/api/costs/by-feature/chat", **bearer(api_key)).json()["calls"] == 2
    key = client.get(f"/api/costs/by-key/{api_key.row.pk}", **bearer(api_key)).json()
    assert key["calls"] == 1 and api_key.row.prefix in key["label"]
    assert client.get("/api/costs/by-model/nope", **bearer(api_key)).status_code == 404


def test_customer_and_feature_lists(client, api_key, spend):
    data = client.get("/api/customers?sort=cost", **bearer(api_key)).json()
    assert [r["customer_id"] for r in data["results"]] == ["c/2 spaced", "c-1", "(untagged)"]
    assert data["count"] == 3 and data["pages"] == 1
    by_name = client.get("/api/customers?sort=name&per_page=2&page=2", **bearer(api_key)).json()
    assert [r["customer_id"] for r in by_name["results"]] == ["c/2 spaced"]
    assert by_name["pages"] == 2
    found = client.get("/api/customers?q=SPACED", **bearer(api_key)).json()
    assert [r["customer_id"] for r in found["results"]] == ["c/2 spaced"]
    features = client.get("/api/features?sort=calls", **bearer(api_key)).json()
    assert [r["feature"] for r in features["results"]][0] in {"chat", "(untagged)"}
    assert client.get("/api/models", **bearer(api_key)).json()["count"] == 3


def test_trace(client, api_key, spend):
    data = client.get("/api/traces/tr-9", **bearer(api_key)).json()
    assert data["calls"] == 2 and data["cost"] == "0.3000000003"
    assert [r["trace_id"] for r in data["records"]] == ["tr-9", "tr-9"]
    assert client.get("/api/traces/nope", **bearer(api_key)).status_code == 404


def test_schema_and_docs(owner_client):
    schema = owner_client.get("/api/schema")
    assert schema.status_code == 200
    body = schema.content.decode()
    for path in ("/api/costs/summary", "/api/costs/daily", "/api/costs/export", "/api/traces/"):
        assert path in body
    docs = owner_client.get("/api/docs")
    assert docs.status_code == 200
    # Served from our own static files, never a CDN (self-hosted installs may be offline).
    html = docs.content.decode()
    assert "swagger-ui" in html and "/static/drf_spectacular_sidecar/" in html
    assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html


def test_dates_are_in_org_zone(client, org, api_key, ingest):
    org.timezone = "Asia/Tokyo"
    org.save()
    # 2026-03-01 16:00 UTC is 2026-03-02 01:00 in Tokyo
    ingest(call(org, datetime(2026, 3, 1, 16, tzinfo=UTC), cost="1.0000000000"))
    march_2 = client.get(
        "/api/costs/summary?start_date=2026-03-02&end_date=2026-03-02", **bearer(api_key)
    ).json()
    assert march_2["total_calls"] == 1 and march_2["timezone"] == "Asia/Tokyo"
    records = client.get(
        "/api/costs?start_date=2026-03-01&end_date=2026-03-01", **bearer(api_key)
    ).json()
    assert records["results"] == []


# --- the seed API's spellings (issue 9) -------------------------------------------


@pytest.mark.parametrize("path", ["/api/costs/summary", "/api/costs/daily", "/api/costs"])
def test_camel_case_dates_mean_the_same(client, api_key, spend, now, path):
    start, end = (now - timedelta(days=3)).date().isoformat(), now.date().isoformat()
    snake = client.get(path, {"start_date": start, "end_date": end}, **bearer(api_key))
    camel = client.get(path, {"startDate": start, "endDate": end}, **bearer(api_key))
    assert snake.status_code == camel.status_code == 200
    assert snake.json() == camel.json()
    body = snake.json()  # the period really holds the calls
    calls = (
        body.get("total_calls")
        or len(body.get("results", []))
        or sum(day["calls"] for day in body.get("days", []))
    )
    assert calls == 5
    clash = client.get(
        path, {"startDate": "2026-01-01", "start_date": "2026-01-02"}, **bearer(api_key)
    )
    assert clash.status_code == 400 and "startDate and start_date" in clash.json()["detail"]
    unknown = client.get(path, {"StartDate": "2026-01-01"}, **bearer(api_key))
    assert (
        unknown.status_code == 400 and "Unknown parameter 'StartDate'" in unknown.json()["detail"]
    )


def test_page_number_pagination_walks_the_same_records_as_the_cursor(client, api_key, spend):
    everything = client.get("/api/costs", {"limit": 1000}, **bearer(api_key)).json()["results"]
    assert len(everything) == 5
    seen, page = [], 1
    while True:
        body = client.get("/api/costs", {"page": page, "limit": 2}, **bearer(api_key)).json()
        assert (body["page"], body["limit"]) == (page, 2)
        seen += [record["id"] for record in body["results"]]
        if body["next"] is None:
            break
        assert f"page={page + 1}" in body["next"] and "cursor" not in body["next"]
        page += 1
    assert page == 3  # 2 + 2 + 1
    assert seen == [record["id"] for record in everything]


def test_page_and_cursor_together_is_400(client, api_key, spend):
    cursor_url = client.get("/api/costs", {"limit": 1}, **bearer(api_key)).json()["next"]
    response = client.get(cursor_url + "&page=2", **bearer(api_key))
    assert response.status_code == 400 and "page or cursor" in response.json()["detail"]
    for bad in ("0", "-1", "x", "10001"):
        assert client.get("/api/costs", {"page": bad}, **bearer(api_key)).status_code == 400


def test_daily_and_summary_page_with_page_and_limit(client, api_key, spend, now):
    end = now.date()
    start = end - timedelta(days=9)
    dates = {"startDate": start.isoformat(), "endDate": end.isoformat()}
    whole = client.get("/api/costs/daily", dates, **bearer(api_key)).json()
    assert len(whole["days"]) == 10
    second = client.get(
        "/api/costs/daily", {**dates, "page": 2, "limit": 3}, **bearer(api_key)
    ).json()
    assert [day["date"] for day in second["days"]] == [
        (start + timedelta(days=n)).isoformat() for n in (3, 4, 5)
    ]
    assert (second["page"], second["limit"]) == (2, 3)

    full = client.get("/api/costs/summary", dates, **bearer(api_key)).json()
    assert len(full["by_model"]) == 3  # claude-opus-4, gpt-4o, mystery
    pages = [
        client.get("/api/costs/summary", {**dates, "page": n, "limit": 2}, **bearer(api_key)).json()
        for n in (1, 2, 3)
    ]
    assert [p["by_model"] for p in pages] == [full["by_model"][:2], full["by_model"][2:], []]
    assert all(p["total_cost"] == full["total_cost"] for p in pages)  # totals are not paged
    too_deep = client.get("/api/costs/summary", {"page": 10_000, "limit": 1000}, **bearer(api_key))
    assert too_deep.status_code == 400 and "/api/customers" in too_deep.json()["detail"]
