"""Customers, features and models tables: every column sorts both ways (against a
Python sort of hand-built data), pages never overlap, each row's sparkline and
change against the previous period are the hand-computed sums; other
organizations never appear; bad sort parameters are a 400."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.services import api_key_issue
from analytics.periods import org_today
from analytics.templatetags.spend import sparkline_points
from analytics.views import tables
from tests.analytics.conftest import call

# customer → its calls (cost or None for unpriced, input tokens, feature), this
# period (yesterday) and the one before (10 days ago).
Calls = dict[str, list[tuple[str | None, int, str]]]
CURRENT: Calls = {
    "alpha": [("0.03", 100, "chat"), ("0.03", 100, "search")],
    "bravo": [("0.06", 100, "chat")],  # alpha's cost: ties break by name
    "charlie": [("0.01", 100, "chat")] * 3,
    "delta": [("0.50", 1000, "search")],
    "echo": [(None, 100, "chat")] * 2,  # unpriced: cost 0, alpha's calls
    "": [("0.02", 300, "")],
}
PREVIOUS: Calls = {
    "alpha": [("0.03", 100, "chat")],  # ×2.0
    "bravo": [("0.06", 100, "chat")],  # 0.0 %
    "charlie": [("0.06", 100, "chat")],  # −50.0 %
    "": [("0.01", 100, "")],  # ×2.0
    "gone": [("0.40", 100, "chat")],  # not in this period: not listed
}
OUT = 10  # output tokens of every call


@dataclass
class Sums:
    calls: int = 0
    tokens: int = 0
    cost: Decimal = Decimal(0)
    previous: Decimal = Decimal(0)
    days: dict = field(default_factory=dict)


def oracle(by: str) -> dict[str, Sums]:
    """Per customer (or feature) sums, by hand from CURRENT and PREVIOUS."""
    sums: dict[str, Sums] = {}
    for customer, calls in CURRENT.items():
        for cost, tokens, feature in calls:
            row = sums.setdefault(customer if by == "customer" else feature, Sums())
            row.calls += 1
            row.tokens += tokens + OUT
            row.cost += Decimal(cost or 0)
    for customer, calls in PREVIOUS.items():
        for cost, _, feature in calls:
            key = customer if by == "customer" else feature
            if key in sums:
                sums[key].previous += Decimal(cost or 0)
    return sums


def change(row: Sums):
    if row.previous:
        return (row.cost - row.previous) / row.previous
    return Decimal("Infinity") if row.cost else None


SORT_VALUES = {
    "name": lambda key, row: key,
    "calls": lambda key, row: row.calls,
    "tokens": lambda key, row: row.tokens,
    "cost": lambda key, row: row.cost,
    "avg_cost": lambda key, row: row.cost / row.calls,
    "change": lambda key, row: change(row),
}


def expected(by: str, column: str, descending: bool) -> list[str]:
    sums = oracle(by)
    known = [k for k in sums if SORT_VALUES[column](k, sums[k]) is not None]
    unknown = sorted(k for k in sums if k not in known)
    # ties by name ascending in both directions, unknown values last
    known.sort(key=lambda k: (SORT_VALUES[column](k, sums[k]), k))
    if descending:
        known.sort(key=lambda k: SORT_VALUES[column](k, sums[k]), reverse=True)
    return known + unknown


@pytest.fixture
def period(org):
    today = org_today(org)
    return {"start_date": str(today - timedelta(days=6)), "end_date": str(today)}


@pytest.fixture
def tabled(org, other_org, ingest):
    now = timezone.now()
    records = [call(other_org, now - timedelta(days=1), cost="9.00", customer_id="zulu-other")]
    for calls, at in ((CURRENT, now - timedelta(days=1)), (PREVIOUS, now - timedelta(days=10))):
        for customer, rows in calls.items():
            for cost, tokens, feature in rows:
                records.append(
                    call(
                        org,
                        at,
                        cost=cost,
                        input_tokens=tokens,
                        output_tokens=OUT,
                        customer_id=customer,
                        feature=feature,
                    )
                )
    ingest(*records)


def shown(html: str, url: str) -> list[str]:
    body = html[html.index('id="dimension-table"') :]
    return [
        "" if key == "(untagged)" else key
        for key in re.findall(rf'<td><a href="/{url}/([^/"?]+)/', body)
    ]


@pytest.mark.parametrize("by,url", [("customer", "customers"), ("feature", "features")])
@pytest.mark.parametrize("column", list(SORT_VALUES))
def test_every_column_sorts_both_ways(owner_client, tabled, period, by, url, column):
    for descending in (False, True):
        sort = f"-{column}" if descending else column
        response = owner_client.get(f"/{url}/", {**period, "sort": sort})
        assert response.status_code == 200
        assert shown(response.content.decode(), url) == expected(by, column, descending), sort


@pytest.mark.parametrize("sort", ["name", "-cost", "cost", "-calls", "avg_cost", "-change"])
def test_pages_follow_the_order_without_overlap(owner_client, tabled, period, monkeypatch, sort):
    monkeypatch.setattr(tables, "PER_PAGE", 2)
    seen = []
    for page in (1, 2, 3):
        html = owner_client.get("/customers/", {**period, "sort": sort, "page": page})
        seen += shown(html.content.decode(), "customers")
    assert seen == expected("customer", sort.lstrip("-"), sort.startswith("-"))


def test_headers_toggle_and_start_each_column_its_own_way(owner_client, tabled, period):
    html = owner_client.get("/customers/", {**period, "sort": "-cost"}).content.decode()
    head = html[html.index("<thead>") : html.index("</thead>")]
    assert 'aria-sort="descending"><a href="?end_date' in head
    links = dict(re.findall(r'href="\?([^"]*)" class="sort[^"]*" data-sort-key="(\w+)"', head))
    by_key = {key: query for query, key in links.items()}
    assert "sort=cost" in by_key["cost"]  # sorted by -cost already: toggles
    assert "sort=name" in by_key["name"] and "sort=-calls" in by_key["calls"]
    assert "sort=-cost" in by_key["share"] and "sort=margin" in by_key["margin"]


def test_sparkline_and_change_are_the_hand_computed_sums(owner_client, tabled, period, org):
    response = owner_client.get("/customers/", period)
    days = [Decimal(0)] * 7
    days[5] = Decimal("0.06")  # yesterday, the 6th of the period's 7 days
    assert response.context["sparklines"]["alpha"] == days
    assert response.context["sparklines"]["delta"][5] == Decimal("0.5")
    changes = response.context["changes"]
    assert changes["alpha"] == Decimal(1) and changes["charlie"] == Decimal("-0.5")
    assert changes["delta"] is None and changes["bravo"] == 0
    html = response.content.decode()
    for customer, text in [("alpha", "×2.0"), ("charlie", "−50.0 %"), ("delta", "new")]:
        row = html[html.index(f'href="/customers/{customer}/') :]
        assert text in row[: row.index("</tr>")]
    assert html.count('<svg class="sparkline"') == len(CURRENT)
    features = owner_client.get("/features/", period).context
    assert features["sparklines"]["search"][5] == Decimal("0.53")
    assert features["changes"]["search"] is None  # nothing before: "new"
    chat = oracle("feature")["chat"]  # "gone" spent on chat before: a fall
    ratio = ((chat.cost - chat.previous) / chat.previous).quantize(Decimal("0.0001"))
    assert features["changes"]["chat"] == ratio < 0


def test_sparkline_points_are_scaled_to_the_biggest_day():
    # 100 × 20 box: x every 50 for three days, y 19 (zero) up to 1 (the peak)
    assert sparkline_points([Decimal(0), Decimal(1), Decimal(2)]) == "0,19 50,10 100,1"
    assert sparkline_points([Decimal(0)] * 2) == "0,19 100,19"
    assert sparkline_points([Decimal(3)]) == "0,1 100,1"


def test_other_organizations_never_appear(owner_client, tabled, period):
    for column in ("-cost", "cost", "-change", "name", "-name", "margin"):
        for url in ("customers", "features"):
            html = owner_client.get(f"/{url}/", {**period, "sort": column}).content.decode()
            assert "zulu-other" not in html and "$9.00" not in html


@pytest.mark.parametrize("sort", ["colour", "--cost", "-", "cost,calls", "change"])
def test_bad_sort_is_a_400_that_says_why(owner_client, tabled, period, sort):
    url = "/models/" if sort == "change" else "/customers/"  # models have no change column
    response = owner_client.get(url, {**period, "sort": sort})
    assert response.status_code == 400
    assert "sort must be one of" in response.content.decode()


def test_models_sort_by_tokens_and_average(owner_client, org, ingest, period):
    at = timezone.now() - timedelta(days=1)
    ingest(
        call(org, at, model="small", cost="0.10", input_tokens=5000),
        call(org, at, model="big", cost="0.05", input_tokens=10),
        call(org, at, model="big", cost="0.05", input_tokens=10),
    )
    html = owner_client.get("/models/", {**period, "sort": "-tokens"}).content.decode()
    assert html.index("/models/small/") < html.index("/models/big/")
    html = owner_client.get("/models/", {**period, "sort": "avg_cost"}).content.decode()
    assert html.index("/models/big/") < html.index("/models/small/")  # $0.05 < $0.10 a call


def test_keys_table_sorts_by_name_and_spend(owner_client, org, api_key, ingest, period):
    other = api_key_issue(organization=org, name="Zed batch", scopes=["proxy"], created_by=None)[0]
    at = timezone.now() - timedelta(days=1)
    ingest(
        call(org, at, cost="0.50", api_key_id=other.pk),
        call(org, at, cost="0.10", api_key_id=api_key.row.pk),
        call(org, at, cost="0.10", api_key_id=api_key.row.pk),
    )
    names = {api_key.row.pk: api_key.row.name, other.pk: "Zed batch"}

    def keys(sort: str) -> list[int]:
        html = owner_client.get("/keys/", {**period, "sort": sort}).content.decode()
        return [int(pk) for pk in re.findall(r'<td><a href="/keys/(\d+)/', html)]

    by_name = sorted(names, key=lambda pk: names[pk])
    assert keys("name") == by_name and keys("-name") == by_name[::-1]
    assert keys("-cost") == [other.pk, api_key.row.pk]
    assert keys("-calls") == [api_key.row.pk, other.pk]
    assert "Zed batch" in owner_client.get("/keys/", {**period, "q": "zed"}).content.decode()
    assert 'id="keys-spend-link"' in owner_client.get("/settings/api-keys/").content.decode()
