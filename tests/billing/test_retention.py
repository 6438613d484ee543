"""Retention purge: raw calls past the plan's retention go, rollups stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from billing.models import Subscription
from billing.retention import usage_purge, usage_purge_all_orgs
from tests.analytics.conftest import call

billing_on = override_settings(AISPENDTRACK_BILLING=True)
NOW = datetime.now(UTC).replace(microsecond=0)
SUMMARY_URL = (
    f"/api/costs/summary?start_date={(NOW - timedelta(days=60)).date()}&end_date={NOW.date()}"
)


def _sql(query: str, *params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def totals(org) -> list[tuple]:
    """Independent SQL over every rollup the pages read (not the selectors)."""
    rows = []
    for table in (
        "analytics_hourlyrollup",
        "analytics_hourlycoarserollup",
        "analytics_dailycoarserollup",
        "analytics_dailymodelrollup",
    ):
        rows += _sql(
            f"SELECT COUNT(*), SUM(calls), SUM(input_tokens), SUM(output_tokens), "  # noqa: S608
            f"CAST(SUM(cost) AS TEXT) FROM {table} WHERE organization_id = %s",
            org.pk,
        )
    return rows


def raw_calls(org) -> int:
    return _sql("SELECT COUNT(*) FROM analytics_usageevent WHERE organization_id = %s", org.pk)[0][
        0
    ]


@pytest.fixture
def history(org, other_org, plans, ingest):
    """Acme (Free, 7 days) and Globex (Pro, 90 days), each with calls 1–30 days old."""
    Subscription.objects.create(organization=other_org, plan=plans["pro"])
    ages = [1, 2, 6, 8, 9, 15, 30]
    for organization in (org, other_org):
        ingest(*[call(organization, NOW - timedelta(days=d, hours=1)) for d in ages])
    return ages


@billing_on
def test_purge_deletes_expired_raw_calls_and_keeps_every_rollup(
    owner_client, org, other_org, history, plans
):
    free_with_api = plans["free"]
    free_with_api.pk, free_with_api.slug, free_with_api.api = None, "free-api", True
    free_with_api.save()
    Subscription.objects.create(organization=org, plan=free_with_api)
    before = totals(org)
    summary_before = owner_client.get(SUMMARY_URL)
    assert raw_calls(org) == 7

    [acme, globex] = usage_purge_all_orgs()

    assert (acme.retention_days, acme.deleted) == (7, 4)  # 8, 9, 15 and 30 days old
    assert raw_calls(org) == 3
    assert totals(org) == before
    assert globex.deleted == 0 and raw_calls(other_org) == 7  # Pro keeps 90 days
    # Calls older than the cutoff are gone, younger ones stay (plain SQL).
    cutoff = NOW - timedelta(days=7)
    left = _sql(
        "SELECT MIN(created_at) FROM analytics_usageevent WHERE organization_id = %s", org.pk
    )[0][0]
    left = left if isinstance(left, datetime) else datetime.fromisoformat(left)
    assert left.replace(tzinfo=UTC) >= cutoff
    # The API's summary of the 90 days is the same after.
    summary_after = owner_client.get(SUMMARY_URL)
    assert summary_after.status_code == 200
    assert summary_after.json() == summary_before.json()


@billing_on
def test_dry_run_counts_and_deletes_nothing(org, history):
    [result, _] = usage_purge_all_orgs(dry_run=True)
    assert result.deleted == 4
    assert raw_calls(org) == 7


@billing_on
def test_batches_never_exceed_the_batch_size(org, history):
    with CaptureQueriesContext(connection) as queries:
        result = usage_purge(organization=org, batch_size=3)
    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    assert result is not None and result.deleted == 4
    assert len(deletes) == 2  # 3 + 1
    assert all("LIMIT 3" in sql for sql in deletes)


@override_settings(AISPENDTRACK_BILLING=False, AISPENDTRACK_RETENTION_DAYS=None)
def test_billing_off_keeps_everything_by_default(org, history):
    assert usage_purge_all_orgs() == []
    assert raw_calls(org) == 7


@override_settings(AISPENDTRACK_BILLING=False, AISPENDTRACK_RETENTION_DAYS=10)
def test_billing_off_uses_retention_days_for_everyone(org, other_org, history):
    results = usage_purge_all_orgs()
    assert [r.deleted for r in results] == [2, 2]  # 15 and 30 days old, in both
    assert raw_calls(org) == raw_calls(other_org) == 5


@billing_on
def test_command_runs_the_same_purge_for_one_org(org, other_org, history, capsys):
    call_command("purge_usage", "--dry-run", "--org", "acme")
    assert "acme: would delete 4 raw calls" in capsys.readouterr().out
    assert raw_calls(org) == 7
    call_command("purge_usage", "--org", "acme")
    assert "acme: deleted 4 raw calls" in capsys.readouterr().out
    assert raw_calls(org) == 3 and raw_calls(other_org) == 7


@billing_on
def test_requests_page_and_export_say_what_is_summarized(owner_client, org, plans):
    page = owner_client.get("/requests/").content.decode()
    cutoff = (datetime.now(UTC) - timedelta(days=7)).strftime("%b %-d, %Y")
    assert f"Calls before {cutoff} are kept as daily totals on the Free plan" in page
    Subscription.objects.create(organization=org, plan=plans["pro"])
    response = owner_client.get("/api/costs/export?format=csv")
    expected = (datetime.now(UTC) - timedelta(days=90)).date().isoformat()
    assert response["x-aispendtrack-summarized-before"] == expected
