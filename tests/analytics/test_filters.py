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
import json
import re
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
from django.http import QueryDict
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
                trace_id=["", "run-1", "run-2", "run-3"][n % 4],
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


def _as_querydict(spec: dict) -> QueryDict:
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


class _Form(HTMLParser):
    """The name/value pairs a browser would submit from #filter-form."""

    def __init__(self):
        super().__init__()
        self.inside = False
        self.pairs: list[tuple[str, str]] = []
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id") == "filter-form":
            self.inside = True
        elif not self.inside:
            return
        elif tag == "input" and a.get("name"):
            self.pairs.append((a["name"], a.get("value") or ""))
        elif tag == "select":
            self._select = a["name"]
            self.pairs.append((a["name"], ""))
        elif tag == "option" and self._select and "selected" in a:
            self.pairs[-1] = (self._select, a.get("value") or "")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "form":
            self.inside = False


def _submitted(html: str) -> QueryDict:
    form = _Form()
    form.feed(html)
    assert form.pairs, "the page has no filter form"
    return QueryDict(urlencode(form.pairs))


def _ids_on_page(html: str) -> set[str]:
    return set(re.findall(r'href="/requests/(req_[^/"]+)/"', html))


PAGES = ["/dashboard/", "/requests/", "/models/", "/customers/", "/features/", "/traces/"]


def test_pages_agree_with_the_oracle_and_round_trip_their_url(owner_client, api_key, ledger):
    for spec in [*SINGLE, {"key_id": "KEY"}, *COMBINED]:
        spec = _spec_with_key(spec, api_key)
        print("filter:", _query(spec))
        expected = _expected(ledger, spec)
        query = _query(spec)
        wanted = parse_filters(_as_querydict(spec))

        requests_page = owner_client.get(f"/requests/?{query}").content.decode()
        assert _ids_on_page(requests_page) == {r.request_id for r in expected}
        # The bar shows the filters in force: submitting it asks for the same page.
        assert parse_filters(_submitted(requests_page)) == wanted

        overview = owner_client.get(f"/dashboard/?{query}")
        assert overview.context["headline"].current.calls == len(expected)
        assert overview.context["headline"].current.cost == _sum(expected)
        assert parse_filters(_submitted(overview.content.decode())) == wanted

        customers = owner_client.get(f"/customers/?{query}")
        shown = {row.key: row.cost for row in customers.context["rows"]}
        assert shown == {
            c: _sum([r for r in expected if r.customer_id == c])
            for c in {r.customer_id for r in expected}
        }
        traces = owner_client.get(f"/traces/?{query}").context["traces"]
        assert {t.trace_id: t.calls for t in traces} == {
            t: sum(1 for r in expected if r.trace_id == t)
            for t in {r.trace_id for r in expected} - {""}
        }
        for path in PAGES[2:]:
            page = owner_client.get(f"{path}?{query}")
            assert page.status_code == 200
            assert parse_filters(_submitted(page.content.decode())) == wanted


def test_detail_pages_narrow_by_the_bar_and_keep_their_own_value(owner_client, ledger):
    spec = {"property": "plan:pro", "cost_min": "0.03"}
    expected = [r for r in _expected(ledger, spec) if r.customer_id == "alpha"]
    page = owner_client.get(f"/customers/alpha/?{_query(spec)}&customer_id=beta")
    assert page.context["detail"].totals.calls == len(expected)
    assert page.context["detail"].totals.cost == _sum(expected)
    html = page.content.decode()
    # "All calls →" opens the requests log of exactly these calls.
    link = re.search(r'href="(/requests/\?[^"]+)" id="all-calls"', html).group(1)
    listed = owner_client.get(link.replace("&amp;", "&")).content.decode()
    assert _ids_on_page(listed) == {r.request_id for r in expected}


def test_export_downloads_what_the_page_shows_and_names_the_range(owner_client, ledger):
    spec = {"property": "plan:pro", "status": "success", "latency_max": "700"}
    page = owner_client.get(f"/requests/?range=7d&{_query(spec)}")
    html = page.content.decode()
    on_screen = _ids_on_page(html)
    assert on_screen == {r.request_id for r in _expected(ledger, spec)}
    period = page.context["period"]
    for fmt in ("csv", "json"):
        href = re.search(rf'href="(/api/costs/export\?format={fmt}[^"]*)"', html).group(1)
        response = owner_client.get(href.replace("&amp;", "&"))
        assert response.status_code == 200
        body = b"".join(response.streaming_content).decode()
        ids = (
            {row["id"] for row in csv.DictReader(io.StringIO(body))}
            if fmt == "csv"
            else {row["id"] for row in json.loads(body)}
        )
        assert ids == on_screen
        assert (
            f"{period.start.isoformat()}_{period.end.isoformat()}.{fmt}"
            in (response["Content-Disposition"])
        )


def test_a_second_organization_never_shows_not_even_in_suggestions(
    owner_client, other_api_key, ledger
):
    for path in PAGES:
        html = owner_client.get(path).content.decode()
        assert "globex-only" not in html and "secret:" not in html, path
        assert other_api_key.row.prefix not in html, path
    # Their values as filters match nothing here.
    spec = {"property": "secret:globex-only"}
    assert owner_client.get(f"/api/costs?{_query(spec)}").json()["results"] == []
    summary = owner_client.get(f"/api/costs/summary?key_id={other_api_key.row.pk}").json()
    assert summary["total_calls"] == 0
    page = owner_client.get(f"/requests/?key_id={other_api_key.row.pk}")
    assert _ids_on_page(page.content.decode()) == set()
    # And the suggestions are this organization's values.
    choices = owner_client.get("/requests/").context["filter_choices"]
    assert "plan:pro" in choices.properties and "region:eu" in choices.properties
    assert set(choices.customers) == {"alpha", "beta", "gamma"}


BAD = [
    ("cost_min=abc", "cost_min"),
    ("cost_min=-1", "cost_min"),
    ("cost_max=NaN", "cost_max"),
    ("cost_min=1e400", "cost_min"),
    ("cost_min=2&cost_max=1", "swap"),
    ("latency_min=fast", "latency_min"),
    ("latency_max=-5", "latency_max"),
    ("latency_min=900&latency_max=100", "swap"),
    ("property=plan", "name:value"),
    ("property=:pro", "name:value"),
    ("&".join(f"property=p{n}:v" for n in range(21)), "at most 20"),
    ("status=exploded", "status"),
    ("key_id=0", "key_id"),
]


@pytest.mark.parametrize(("query", "said"), BAD)
def test_bad_values_are_a_400_that_says_why(owner_client, query, said):
    for path in ["/api/costs", "/api/costs/summary", "/api/customers", "/api/costs/export"]:
        response = owner_client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query)
        assert said in response.json()["detail"]
    for path in PAGES:
        response = owner_client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query)
        assert said in response.content.decode()
