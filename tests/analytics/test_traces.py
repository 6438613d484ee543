"""The traces page: search by trace id prefix, customer and feature; every column
sorts both ways (against a Python sort of hand-built traces); other organizations'
traces never appear; bad parameters are a 400."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.analytics.conftest import call

# trace → its calls: (seconds after the start, cost, input tokens, customer, feature)
TRACES = {
    "t-alpha-1": [(0, "0.10", 100, "acme", "chat"), (90, "0.20", 300, "acme", "chat")],
    "t-alpha-2": [(10, "0.30", 50, "bolt", "search")],
    "t-beta-1": [(20, "0.05", 900, "acme", "search"), (25, "0.05", 10, "acme", "search")],
    "t_alpha-9": [(5, "0.30", 50, "bolt", "chat")],  # "_" is not a wildcard
}
OUT = 10


@pytest.fixture
def traced(org, other_org, ingest):
    start = timezone.now() - timedelta(hours=2)
    records = [call(other_org, start, trace_id="t-alpha-other", customer_id="acme")]
    for trace, calls in TRACES.items():
        for seconds, cost, tokens, customer, feature in calls:
            at = start + timedelta(seconds=seconds)
            records.append(
                call(
                    org,
                    at,
                    cost=cost,
                    trace_id=trace,
                    input_tokens=tokens,
                    output_tokens=OUT,
                    customer_id=customer,
                    feature=feature,
                )
            )
    ingest(*records)


def listed(client, **params) -> list[str]:
    response = client.get("/traces/", {"range": "7d", **params})
    assert response.status_code == 200
    html = response.content.decode()
    return re.findall(r'<a class="mono" href="/traces/([^/"]+)/"', html)


def oracle(column: str):
    def value(trace: str):
        calls = TRACES[trace]
        offsets = [c[0] for c in calls]
        return {
            "trace": trace,
            "calls": len(calls),
            "tokens": sum(c[2] + OUT for c in calls),
            "started": min(offsets),
            "duration": max(offsets) - min(offsets),
            "cost": sum(Decimal(c[1]) for c in calls),
        }[column]

    return value


@pytest.mark.parametrize("column", ["trace", "calls", "tokens", "started", "duration", "cost"])
def test_every_column_sorts_both_ways(owner_client, traced, column):
    value = oracle(column)
    ascending = sorted(sorted(TRACES), key=value)
    descending = sorted(sorted(TRACES), key=value, reverse=True)  # ties stay by id
    assert listed(owner_client, sort=column) == ascending
    assert listed(owner_client, sort=f"-{column}") == descending


def test_search_by_prefix_customer_and_feature(owner_client, traced):
    assert sorted(listed(owner_client, q="t-alpha")) == ["t-alpha-1", "t-alpha-2"]
    assert listed(owner_client, q="t_alpha") == ["t_alpha-9"]
    assert listed(owner_client, q="%") == []
    assert sorted(listed(owner_client, customer_id="acme")) == ["t-alpha-1", "t-beta-1"]
    assert listed(owner_client, q="t-alpha", feature="search") == ["t-alpha-2"]
    html = owner_client.get("/traces/", {"q": "nothing-like-this"}).content.decode()
    assert "No trace matches this search" in html


def test_other_organizations_traces_never_appear(owner_client, traced):
    assert "t-alpha-other" not in listed(owner_client, q="t-alpha")
    assert "t-alpha-other" not in listed(owner_client, customer_id="acme", sort="trace")


@pytest.mark.parametrize("query", ["sort=colour", "sort=-", "range=ever", "customer_id=a%00b"])
def test_bad_parameters_are_400(owner_client, traced, query):
    response = owner_client.get(f"/traces/?{query}")
    assert response.status_code == 400
