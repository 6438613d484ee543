"""CSV/JSON export: streamed, same filters as records, Decimal costs round-trip exactly."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from analytics.api import export
from analytics.selectors import RECORD_FIELDS
from tests.analytics.conftest import call, plan_without

COSTS = ["0.0000000001", "123.4567890123", "0.1000000000", "1234.5678901234", "0.3333333333"]
if connection.vendor == "postgresql":
    # numeric(20,10) keeps all 20 digits; SQLite stores REAL, ~15 (the ledger's limit there).
    COSTS[3] = "9999999.9999999999"


@pytest.fixture
def calls(org, ingest):
    t = timezone.now() - timedelta(minutes=10)
    records = [
        call(
            org,
            t + timedelta(seconds=n),
            cost=cost,
            customer_id=f'c,"{n}"\n',
            properties={"plan": "pro", "n": str(n)},
        )
        for n, cost in enumerate(COSTS)
    ]
    records.append(
        call(org, t - timedelta(seconds=1), cost=None, model="mystery", customer_id="other")
    )
    return ingest(*records)


def _body(response) -> str:
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def test_csv_round_trips_decimal_costs_exactly(owner_client, calls):
    response = owner_client.get("/api/costs/export?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(_body(response))))
    assert list(rows[0]) == list(RECORD_FIELDS)
    by_id = {row["id"]: row for row in rows}
    for record in calls:
        row = by_id[record.request_id]
        expected = record.cost if record.cost is not None else Decimal(0)
        assert Decimal(row["cost"]) == expected
        assert row["customer_id"] == record.customer_id  # commas, quotes, newlines survive
        assert row["priced"] == ("true" if record.cost is not None else "false")
    assert json.loads(by_id[calls[1].request_id]["properties"]) == {"plan": "pro", "n": "1"}
    total = sum(Decimal(row["cost"]) for row in rows)
    assert total == sum(Decimal(c) for c in COSTS)


def test_json_export_honours_filters(owner_client, calls):
    response = owner_client.get("/api/costs/export?format=json&customer_id=other")
    data = json.loads(_body(response))
    assert [r["model"] for r in data] == ["mystery"]
    assert data[0]["cost"] == "0.0000000000"


def test_json_export_exact_and_ordered(owner_client, calls):
    data = json.loads(_body(owner_client.get("/api/costs/export?format=json")))
    assert [r["cost"] for r in data][:5] == list(reversed(COSTS))  # newest first
    assert len(data) == 6


def test_export_is_fetched_in_chunks(owner_client, calls, monkeypatch):
    monkeypatch.setattr(export, "EXPORT_CHUNK", 2)
    rows = list(csv.DictReader(io.StringIO(_body(owner_client.get("/api/costs/export")))))
    assert len(rows) == 6 and len({r["id"] for r in rows}) == 6
    data = json.loads(_body(owner_client.get("/api/costs/export?format=json")))
    assert len(data) == 6


def test_empty_export_is_valid(owner_client, org):
    assert json.loads(_body(owner_client.get("/api/costs/export?format=json"))) == []
    assert _body(owner_client.get("/api/costs/export?format=csv")).startswith("id,created_at,")


def test_a_deep_page_starts_its_index_scan_at_the_cursor(org, ingest):
    """Keyset pages must be an index range from the cursor down, not a walk
    from the newest event (which made a 10M-event export quadratic)."""
    from analytics.selectors.events import cursor_encode, events_after, events_in

    now = timezone.now()
    ingest(*(call(org, now - timedelta(seconds=n)) for n in range(30)))
    cursor = cursor_encode(now - timedelta(seconds=10), 10**9)
    qs = events_after(events_in(organization=org), cursor)
    assert len(qs) == 20
    # 30 rows leave the planner free to pick any (organization, …) index;
    # the question is whether the ordered one can start at the cursor.
    plan = plan_without(qs, "seqscan", "sort")
    if connection.vendor == "postgresql":
        index_cond = next(line for line in plan.splitlines() if "Index Cond" in line)
        assert "created_at <=" in index_cond, plan
    else:
        assert "USING INDEX ue_org_created (organization_id=? AND created_at<?)" in plan, plan


FORMULAS = ['=HYPERLINK("http://evil.test","x")', "+1+1", "-2+3", "@SUM(A1)"]


def test_csv_neutralises_formula_cells_and_json_keeps_them(owner_client, org, ingest):
    t = timezone.now() - timedelta(minutes=10)
    ingest(
        *(
            call(org, t + timedelta(seconds=n), customer_id=value, feature=value)
            for n, value in enumerate([*FORMULAS, "plain-name"])
        )
    )
    rows = list(csv.DictReader(io.StringIO(_body(owner_client.get("/api/costs/export")))))
    customers = sorted(row["customer_id"] for row in rows)
    assert customers == sorted(["'" + value for value in FORMULAS] + ["plain-name"])
    assert sorted(row["feature"] for row in rows) == customers
    assert all(not row["cost"].startswith("'") for row in rows)  # numbers stay numbers

    exported = json.loads(_body(owner_client.get("/api/costs/export?format=json")))
    assert sorted(row["customer_id"] for row in exported) == sorted([*FORMULAS, "plain-name"])


@pytest.mark.parametrize(
    ("value", "cell"),
    [("\tx", "'\tx"), ("\rx", "'\rx"), ("a=b", "a=b"), ("", ""), (5, 5), (None, "")],
)
def test_cell_rule(value, cell):
    assert export._cell(value) == cell
