"""The customer × feature matrix: cells equal a plain GROUP BY over the events,
sorting by totals and by one feature's cost, the CSV export (formula-safe),
links to it, tenancy and bad parameters."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics.models import UsageEvent
from analytics.periods import Period, org_today, org_zone
from tests.analytics.conftest import call

# (customer, feature, cost) of calls yesterday; one call each.
CALLS = [
    ("acme", "chat", "0.10"),
    ("acme", "chat", "0.10"),
    ("acme", "search", "0.05"),
    ("bolt", "chat", "0.30"),
    ("bolt", "", "0.01"),
    ("=HYPERLINK(1)", "+sum", "0.02"),
    ("", "chat", "0.04"),
    ("cedar", "search", "0.25"),
]


@pytest.fixture
def period(org):
    today = org_today(org)
    return Period(today - timedelta(days=6), today, org_zone(org))


@pytest.fixture
def params(period):
    return {"start_date": str(period.start), "end_date": str(period.end)}


@pytest.fixture
def matrixed(org, other_org, ingest):
    now = timezone.now()
    ingest(
        *(
            call(org, now - timedelta(days=1), cost=c, customer_id=u, feature=f)
            for u, f, c in CALLS
        ),
        call(org, now - timedelta(days=20), cost="5.00", customer_id="acme", feature="chat"),
        call(
            other_org, now - timedelta(days=1), cost="7.00", customer_id="globex-only", feature="x"
        ),
    )


def events_group_by(org, period: Period) -> dict[tuple[str, str], tuple[int, Decimal]]:
    """The oracle: (customer, feature) → (calls, cost), summed in Python over the events."""
    cells: dict[tuple[str, str], tuple[int, Decimal]] = {}
    rows = UsageEvent.objects.filter(
        organization=org, created_at__gte=period.start_utc, created_at__lt=period.end_utc
    ).values_list("customer_id", "feature", "cost")
    for customer, feature, cost in rows:
        calls, total = cells.get((customer, feature), (0, Decimal(0)))
        cells[(customer, feature)] = (calls + 1, total + Decimal(cost))
    return cells


def shown_cells(matrix) -> dict[tuple[str, str], tuple[int, Decimal]]:
    return {
        (row.customer, feature): (cell.calls, cell.cost)
        for row in matrix.rows
        for feature, cell in row.cells.items()
    }


def test_cells_are_the_events_grouped(owner_client, org, matrixed, period, params):
    response = owner_client.get("/matrix/", params)
    assert response.status_code == 200
    oracle = events_group_by(org, period)
    assert shown_cells(response.context["matrix"]) == oracle
    assert {f["key"] for f in response.context["feature_columns"]} == {f for _, f in oracle}
    totals = {
        row.customer: (row.total.calls, row.total.cost) for row in response.context["matrix"].rows
    }
    assert totals["acme"] == (3, Decimal("0.25"))  # not the $5 call 20 days ago
    html = response.content.decode()
    assert "globex-only" not in html and 'href="/matrix/export.csv?start_date=' in html


def order(owner_client, params, sort) -> list[str]:
    response = owner_client.get("/matrix/", {**params, "sort": sort})
    assert response.status_code == 200
    return [row.customer for row in response.context["matrix"].rows]


def test_sorts_by_totals_and_by_one_feature(owner_client, org, matrixed, period, params):
    oracle = events_group_by(org, period)
    cost: dict[str, Decimal] = {}
    calls: dict[str, int] = {}
    for (customer, _), (n, c) in oracle.items():
        cost[customer] = cost.get(customer, Decimal(0)) + c
        calls[customer] = calls.get(customer, 0) + n
    customers = sorted(cost)
    by_cost = sorted(customers, key=lambda u: (-cost[u], u))
    assert order(owner_client, params, "-cost") == by_cost
    assert order(owner_client, params, "cost") == sorted(customers, key=lambda u: (cost[u], u))
    assert order(owner_client, params, "-calls") == sorted(customers, key=lambda u: (-calls[u], u))
    assert order(owner_client, params, "name") == customers
    assert order(owner_client, params, "-name") == customers[::-1]
    chat = {u: c for (u, f), (_, c) in oracle.items() if f == "chat"}
    assert order(owner_client, params, "-feature:chat") == sorted(chat, key=lambda u: (-chat[u], u))
    assert order(owner_client, params, "feature:chat") == sorted(chat, key=lambda u: (chat[u], u))
    untagged = [u for (u, f) in oracle if f == ""]
    assert order(owner_client, params, "-feature:(untagged)") == untagged


def test_csv_export_is_every_cell_formula_safe(owner_client, org, matrixed, period, params):
    response = owner_client.get("/matrix/export.csv", params)
    assert response.status_code == 200
    name = f"aispendtrack-customer-features-{period.start}_{period.end}.csv"
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["customer_id", "feature", "calls", "cost"]
    assert ["'=HYPERLINK(1)", "'+sum", "1", "0.0200000000"] in rows
    unescaped = {
        (u.removeprefix("'"), f.removeprefix("'")): (int(n), Decimal(c)) for u, f, n, c in rows[1:]
    }
    assert unescaped == events_group_by(org, period)
    assert "globex" not in response.content.decode()


def test_linked_from_customers_features_and_the_nav(owner_client, matrixed, params):
    for url in ("/customers/", "/features/"):
        html = owner_client.get(url, params).content.decode()
        assert 'href="/matrix/?' in html and 'id="matrix-link"' in html
        assert '<a href="/matrix/" class="">Matrix</a>' in html


@pytest.mark.parametrize("query", ["sort=bogus", "sort=feature:", "page=0", "range=ever"])
def test_bad_parameters_are_400(owner_client, matrixed, query):
    response = owner_client.get(f"/matrix/?{query}")
    assert response.status_code == 400 and 'id="param-error"' in response.content.decode()


def test_another_organization_sees_only_its_own(client, other_owner, matrixed, params):
    client.force_login(other_owner)
    response = client.get("/matrix/", params)
    assert [row.customer for row in response.context["matrix"].rows] == ["globex-only"]
    exported = client.get("/matrix/export.csv", params).content.decode()
    assert "acme" not in exported and "globex-only" in exported


def cells(response) -> dict[tuple[str, str], tuple[int, Decimal]]:
    assert response.status_code == 200, response.content
    return shown_cells(response.context["matrix"])


@pytest.mark.parametrize(
    ("filters", "kept"),
    [
        ({"customer_id": "acme"}, lambda u, f: u == "acme"),
        ({"feature": "chat"}, lambda u, f: f == "chat"),
        ({"feature": "(untagged)"}, lambda u, f: f == ""),
        ({"customer_id": "(untagged)"}, lambda u, f: u == ""),
        ({"customer_id": "bolt", "feature": "chat"}, lambda u, f: (u, f) == ("bolt", "chat")),
    ],
)
def test_filters_keep_the_cells_they_name(
    owner_client, org, matrixed, period, params, filters, kept
):
    oracle = {cell: sums for cell, sums in events_group_by(org, period).items() if kept(*cell)}
    response = owner_client.get("/matrix/", {**params, **filters})
    assert cells(response) == oracle
    totals: dict[str, Decimal] = {}
    for (customer, _), (_, cost) in oracle.items():
        totals[customer] = totals.get(customer, Decimal(0)) + cost
    ranked = sorted(totals, key=lambda u: (-totals[u], u))
    matrix = response.context["matrix"]
    assert [row.customer for row in matrix.rows] == ranked and matrix.count == len(ranked)
    assert {row.customer: row.total.cost for row in matrix.rows} == totals
    # The export carries them: exactly these cells, the range in the file name.
    html = response.content.decode()
    link = html[html.index('id="matrix-export"') :]
    link = link[link.index('href="') + 6 : link.index('"', link.index('href="') + 6)]
    exported = owner_client.get(link.replace("&amp;", "&"))
    name = f"aispendtrack-customer-features-{period.start}_{period.end}.csv"
    assert exported["Content-Disposition"] == f'attachment; filename="{name}"'
    rows = list(csv.reader(io.StringIO(exported.content.decode())))[1:]
    assert {(u, f): (int(n), Decimal(c)) for u, f, n, c in rows} == oracle


def test_filter_bar_offers_only_what_the_matrix_answers(owner_client, matrixed, params):
    html = owner_client.get("/matrix/", {**params, "feature": "chat"}).content.decode()
    assert 'id="filter-bar"' in html and 'id="f-customer"' in html and 'id="f-feature"' in html
    for absent in ('id="f-model"', 'id="f-status"', 'id="f-key"', 'name="property"'):
        assert absent not in html
    assert 'data-filter="feature"' in html  # the chip that removes it


def test_one_feature_sorted_among_another_features_calls_is_empty(owner_client, matrixed, params):
    response = owner_client.get(
        "/matrix/", {**params, "feature": "chat", "sort": "-feature:search"}
    )
    assert cells(response) == {} and response.context["matrix"].count == 0
    same = owner_client.get("/matrix/", {**params, "feature": "chat", "sort": "-feature:chat"})
    assert [row.customer for row in same.context["matrix"].rows][0] == "bolt"


@pytest.mark.parametrize(
    ("query", "said"),
    [("model=gpt-4o", "model"), ("status=success", "status"), ("cost_min=0.01", "cost")],
)
def test_filters_the_rollup_cannot_answer_are_400s_that_say_so(owner_client, matrixed, query, said):
    for path in ("/matrix/", "/matrix/export.csv"):
        response = owner_client.get(f"{path}?{query}")
        assert response.status_code == 400
        message = response.content.decode()
        assert f"do not keep {said}" in message and "filter it by customer or feature" in message


def test_another_organization_filtered_by_our_customer_sees_nothing(
    client, other_owner, matrixed, params
):
    client.force_login(other_owner)
    response = client.get("/matrix/", {**params, "customer_id": "acme"})
    assert cells(response) == {}
    exported = client.get("/matrix/export.csv", {**params, "customer_id": "acme"})
    assert exported.content.decode().strip() == "customer_id,feature,calls,cost"
