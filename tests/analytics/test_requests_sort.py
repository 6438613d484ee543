"""The requests table sorts by every column, both ways, with keyset pages that
neither skip nor repeat a call (against a Python sort of hand-built calls)."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics.models import Status
from analytics.selectors.sorted_records import sorted_cursor_encode
from analytics.views import requests as requests_view
from tests.analytics.conftest import call

# model, customer, feature, status, input tokens, latency ms, cost; a minute apart
CALLS = [
    ("gpt-4o", "acme", "chat", Status.SUCCESS, 100, 300, "0.0100000000"),
    ("claude", "bolt", "search", Status.SUCCESS, 900, 120, "0.0300000000"),
    ("gpt-4o", "acme", "", Status.UPSTREAM_ERROR, 100, 300, "0.0100000000"),
    ("mini", "", "chat", Status.TIMEOUT, 5, 9000, None),
    ("claude", "cedar", "chat", Status.SUCCESS, 2000, 450, "0.2500000000"),
    ("gpt-4o", "bolt", "search", Status.SUCCESS, 100, 80, "0.0100000000"),
    ("mini", "acme", "search", Status.SUCCESS, 40, 120, "0.0010000000"),
]
COLUMN = {"model": 0, "customer": 1, "feature": 2, "status": 3, "tokens": 4, "latency": 5}
OUT = 10


@pytest.fixture
def logged(org, other_org, ingest):
    start = timezone.now() - timedelta(hours=3)
    records = [call(other_org, start, customer_id="globex-only")]
    for n, (model, customer, feature, status, tokens, latency, cost) in enumerate(CALLS):
        records.append(
            call(
                org,
                start + timedelta(minutes=n),
                model=model,
                customer_id=customer,
                feature=feature,
                status=status,
                input_tokens=tokens,
                output_tokens=OUT,
                latency_ms=latency,
                cost=cost,
            )
        )
    ingest(*records)
    return [r.request_id for r in records[1:]]  # in time order


def value(column: str, n: int):
    if column == "time":
        return n  # a minute apart: the index is the time
    if column == "cost":
        return Decimal(CALLS[n][6] or 0)
    if column == "tokens":
        return CALLS[n][4] + OUT
    return CALLS[n][COLUMN[column]]


def expected(ids: list[str], column: str, descending: bool) -> list[str]:
    # ascending: by the column, newest first among equals; descending: the reverse
    order = sorted(range(len(ids)), key=lambda n: (value(column, n), -n))
    if column == "time":
        order = sorted(range(len(ids)))
    if descending:
        order.reverse()
    return [ids[n] for n in order]


def walk(client, sort: str) -> list[str]:
    """Every page of the requests table in this order, following Next links."""
    url = f"/requests/?sort={sort}"
    seen: list[str] = []
    for _ in range(10):
        response = client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        seen += re.findall(r'href="/requests/(req_t\d+)/"', html)
        found = re.search(r'id="older" href="(\?[^"]+)"', html)
        if found is None:
            return seen
        url = "/requests/" + found.group(1).replace("&amp;", "&")
    raise AssertionError("more pages than calls")


@pytest.mark.parametrize("column", ["time", *COLUMN, "cost"])
def test_every_column_sorts_both_ways_across_pages(owner_client, logged, monkeypatch, column):
    monkeypatch.setattr(requests_view, "PER_PAGE", 2)
    for descending in (False, True):
        sort = f"-{column}" if descending else column
        assert walk(owner_client, sort) == expected(logged, column, descending), sort


def test_headers_link_each_column_and_keep_the_filters(owner_client, logged):
    html = owner_client.get("/requests/?customer_id=acme&sort=-cost").content.decode()
    head = html[html.index('id="records-table"') : html.index("</thead>")]
    assert 'href="?customer_id=acme&amp;sort=cost"' in head  # toggles the sorted column
    assert 'href="?customer_id=acme&amp;sort=model"' in head
    assert 'href="?customer_id=acme&amp;sort=-latency"' in head
    assert "sort=" not in html[html.index("/api/costs/export") :].split('"')[0]


@pytest.mark.parametrize(
    "query",
    [
        "sort=colour",
        "sort=-",
        "sort=cost&cursor=bm9wZQ",
        "sort=cost&cursor=WyJjb3N0IiwgMSwgMiwgM10",  # ["cost", 1, 2, 3]: not a time
    ],
)
def test_bad_sort_or_cursor_is_a_400(owner_client, logged, query):
    response = owner_client.get(f"/requests/?{query}")
    assert response.status_code == 400 and 'id="param-error"' in response.content.decode()


@pytest.mark.parametrize(
    "sort,values",
    [
        ("-cost", ["abc", "2026-01-01T00:00:00+00:00", 1]),
        ("-cost", ["1e99", "2026-01-01T00:00:00+00:00", 1]),
        ("-cost", ["NaN", "2026-01-01T00:00:00+00:00", 1]),
        ("-latency", [2**70, "2026-01-01T00:00:00+00:00", 1]),
        ("-latency", ["12", "2026-01-01T00:00:00+00:00", 1]),
        ("model", ["a\x00b", "2026-01-01T00:00:00+00:00", 1]),
        ("model", ["gpt", "2026-01-01T00:00:00", 1]),  # a naive time
        ("model", ["gpt", "2026-01-01T00:00:00+00:00", 0]),
        ("time", [{"x": 1}, 1]),
    ],
)
def test_forged_cursors_are_a_400_never_a_500(owner_client, logged, sort, values):
    cursor = sorted_cursor_encode(sort, values)
    response = owner_client.get("/requests/", {"sort": sort, "cursor": cursor})
    assert response.status_code == 400 and "cursor is not one this page issued" in (
        response.content.decode()
    )


def test_a_cursor_of_another_sort_is_refused(owner_client, logged, monkeypatch):
    monkeypatch.setattr(requests_view, "PER_PAGE", 2)
    html = owner_client.get("/requests/?sort=-cost").content.decode()
    link = re.search(r'id="older" href="\?([^"]+)"', html).group(1).replace("&amp;", "&")
    response = owner_client.get(f"/requests/?{link.replace('sort=-cost', 'sort=model')}")
    assert response.status_code == 400


def test_other_organizations_calls_never_appear(owner_client, logged):
    for sort in ("customer", "-customer", "cost", "-time"):
        assert "globex-only" not in owner_client.get(f"/requests/?sort={sort}").content.decode()
