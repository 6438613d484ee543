"""The filter bar's filters (issue 12), each against an independent oracle:
Python filtering over the very calls the test wrote, never the code's rule.

Rollup-answerable filters (customer, feature, model, provider, key,
environment, status) and event-only ones (properties, cost and latency
ranges) must agree with the oracle on totals, breakdowns, daily series,
record lists, exports and pages, alone and combined.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from analytics import selectors
from analytics.params import parse_filters
from analytics.periods import period_preset
from tests.analytics.conftest import call

MODELS = [("gpt-4o", "openai"), ("claude-opus-4", "anthropic"), ("gemini-2.5-pro", "gemini")]
STATUSES = ["success", "success", "upstream_error", "rate_limited"]
ENVIRONMENTS = ["production", "staging"]
PLANS = ["free", "pro", "enterprise"]


def _matches(record, spec: dict) -> bool:
    """The oracle: does this call (as written) pass these query parameters?"""
    for name, wanted in spec.items():
        if name == "property":
            pairs = [wanted] if isinstance(wanted, str) else wanted
            for pair in pairs:
                key, _, value = pair.partition(":")
                if record.properties.get(key) != value:
                    return False
        elif name == "cost_min":
            if (record.cost or Decimal(0)) < Decimal(wanted):
                return False
        elif name == "cost_max":
            if (record.cost or Decimal(0)) > Decimal(wanted):
                return False
        elif name == "latency_min":
            if record.latency_ms < int(wanted):
                return False
        elif name == "latency_max":
            if record.latency_ms > int(wanted):
                return False
        elif name == "key_id":
            if record.api_key_id != int(wanted):
                return False
        elif name in ("customer_id", "feature"):
            if getattr(record, name) != ("" if wanted == "(untagged)" else wanted):
                return False
        elif getattr(record, name) != wanted:
            return False
    return True


@pytest.fixture
def ledger(org, other_org, api_key, other_api_key, ingest):
    """72 calls of the first organization over 6 days, every dimension varied
    independently, and a second organization's calls with look-alike values."""
    now = timezone.now()
    records = []
    for n in range(72):
        model, provider = MODELS[n % 3]
        records.append(
            call(
                org,
                now - timedelta(days=n % 6, minutes=5 + n),
                cost=f"{(n % 9) * 0.0125 + 0.001:.10f}",
                model=model,
                provider=provider,
                customer_id=["alpha", "beta", "gamma", ""][n % 4],
                feature=["chat", "search", ""][n % 5 % 3],
                environment=ENVIRONMENTS[n % 2],
                status=STATUSES[n % 7 % 4],
                api_key_id=api_key.row.pk if n % 3 != 1 else None,
                latency_ms=100 + (n * 37) % 900,
                properties={"plan": PLANS[n % 3], **({"region": "eu"} if n % 4 == 0 else {})},
            )
        )
    theirs = [
        call(
            other_org,
            now - timedelta(hours=n),
            cost="5.0000000000",
            model="gpt-4o",
            customer_id="alpha",
            feature="chat",
            api_key_id=other_api_key.row.pk,
            latency_ms=500,
            properties={"plan": "pro", "region": "eu", "secret": "globex-only"},
        )
        for n in range(6)
    ]
    ingest(*records, *theirs)
    return records


SINGLE = [
    {"customer_id": "alpha"},
    {"customer_id": "(untagged)"},
    {"feature": "search"},
    {"model": "claude-opus-4"},
    {"provider": "gemini"},
    {"environment": "staging"},
    {"status": "upstream_error"},
    {"property": "plan:pro"},
    {"property": "region:eu"},
    {"cost_min": "0.05"},
    {"cost_max": "0.026"},
    {"latency_min": "500"},
    {"latency_max": "300"},
]
COMBINED = [
    {"customer_id": "alpha", "model": "gpt-4o"},
    {"property": ["plan:pro", "region:eu"]},
    {"property": "plan:free", "status": "success", "environment": "production"},
    {"cost_min": "0.02", "cost_max": "0.08", "latency_min": "200", "latency_max": "800"},
    {"feature": "chat", "cost_min": "0.03", "property": "plan:enterprise"},
    {"provider": "openai", "latency_max": "600", "customer_id": "(untagged)"},
]


def _spec_with_key(spec, api_key):
    return {**spec, "key_id": str(api_key.row.pk)} if spec.get("key_id") == "KEY" else spec


def _query(spec: dict) -> str:
    return urlencode(spec, doseq=True)


def _expected(records, spec):
    chosen = [r for r in records if _matches(r, spec)]
    assert chosen, f"the fixture should have calls matching {spec}"
    return chosen


def _sum(records) -> Decimal:
    return sum((r.cost or Decimal(0) for r in records), Decimal(0))


ALL = [*SINGLE, {"key_id": "KEY"}, *COMBINED]


def test_selectors_agree_with_the_oracle(org, api_key, ledger):
    # One ledger for every filter: writing it is most of the time a case takes.
    for spec in ALL:
        _selectors_agree(org, ledger, _spec_with_key(spec, api_key))


def _selectors_agree(org, ledger, spec):
    print("filter:", _query(spec))  # shown when an assertion fails
    expected = _expected(ledger, spec)
    filters = parse_filters(_as_querydict(spec))
    period = period_preset(org, "30d")
    totals = selectors.spend_totals(organization=org, period=period, filters=filters)
    assert (totals.calls, totals.cost) == (len(expected), _sum(expected))
    assert totals.error_calls == sum(1 for r in expected if r.status != "success")
    assert totals.input_tokens == sum(r.usage.input_tokens for r in expected)

    by_model = defaultdict(Decimal)
    for r in expected:
        by_model[r.model] += r.cost or Decimal(0)
    rows = selectors.spend_breakdown(organization=org, period=period, by="model", filters=filters)
    assert {row.key: row.cost for row in rows} == dict(by_model)
    ranked = selectors.spend_ranking(
        organization=org, period=period, by="customer", filters=filters, limit=2, order="calls"
    )
    per_customer = defaultdict(int)
    for r in expected:
        per_customer[r.customer_id] += 1
    assert ranked.count == len(per_customer)
    assert [row.calls for row in ranked.rows] == sorted(per_customer.values(), reverse=True)[:2]

    daily = selectors.spend_daily(organization=org, period=period, filters=filters)
    per_day = defaultdict(int)
    for r in expected:
        per_day[timezone.localtime(r.created_at, period.zone).date()] += 1
    assert {d.key: d.calls for d in daily.days if d.calls} == dict(per_day)

    page = selectors.usage_events_page(organization=org, period=period, filters=filters, limit=1000)
    assert {r["id"] for r in page.records} == {r.request_id for r in expected}


def _as_querydict(spec: dict):
    from django.http import QueryDict

    return QueryDict(_query(spec))


def test_api_summary_records_and_export_agree_with_the_oracle(owner_client, api_key, ledger):
    for spec in ALL:
        _api_agrees(owner_client, ledger, _spec_with_key(spec, api_key))


def _api_agrees(owner_client, ledger, spec):
    print("filter:", _query(spec))
    expected = _expected(ledger, spec)
    query = _query(spec)
    start = (timezone.localdate() - timedelta(days=10)).isoformat()
    summary = owner_client.get(f"/api/costs/summary?start_date={start}&{query}").json()
    assert summary["total_calls"] == len(expected)
    assert Decimal(summary["total_cost"]) == _sum(expected)
    customers = {row["customer_id"] for row in summary["by_customer"]}
    assert customers == {r.customer_id or "(untagged)" for r in expected}

    daily = owner_client.get(f"/api/costs/daily?start_date={start}&{query}").json()
    assert sum(day["calls"] for day in daily["days"]) == len(expected)

    records = owner_client.get(f"/api/costs?limit=1000&{query}").json()
    assert {r["id"] for r in records["results"]} == {r.request_id for r in expected}

    response = owner_client.get(f"/api/costs/export?format=csv&start_date={start}&{query}")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {row["id"] for row in rows} == {r.request_id for r in expected}

    listed = owner_client.get(f"/api/models?start_date={start}&{query}").json()
    assert {row["model"]: Decimal(row["cost"]) for row in listed["results"]} == {
        model: _sum([r for r in expected if r.model == model])
        for model in {r.model for r in expected}
    }
