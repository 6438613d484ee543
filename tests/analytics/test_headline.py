"""The overview's headline is the chosen period, each figure against the equal
period before it; latency percentiles from the latest calls (hand-computed)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from analytics.models import Status
from analytics.periods import Period, local_midnight_utc, org_today, org_zone
from analytics.selectors import latency_percentiles, overview_headline
from analytics.selectors.headline import nearest_rank
from tests.analytics.conftest import call, plan_without


def test_nearest_rank_by_hand():
    values = [100, 200, 300, 1000]
    assert nearest_rank(values, 50) == 200  # ceil(0.5 × 4) = 2nd
    assert nearest_rank(values, 95) == 1000  # ceil(0.95 × 4) = 4th
    assert nearest_rank([7], 95) == 7
    assert nearest_rank([], 50) is None
    twenty = list(range(1, 21))
    assert nearest_rank(twenty, 95) == 19  # ceil(19.0) = 19th
    assert nearest_rank(twenty, 50) == 10


@pytest.fixture
def days(org):
    today = org_today(org)
    zone = org_zone(org)

    def noon(days_ago: int):
        return local_midnight_utc(today - timedelta(days=days_ago), zone) + timedelta(hours=12)

    current = Period(today - timedelta(days=2), today, zone)
    return noon, current


@pytest.fixture
def two_periods(org, other_org, ingest, days):
    noon, _ = days
    ingest(
        # the chosen period: the last 3 days
        call(org, noon(0), cost="1.0000000000", latency_ms=100),
        call(org, noon(1), cost="2.0000000000", latency_ms=200),
        call(org, noon(1), cost="0.5000000000", latency_ms=300, status=Status.UPSTREAM_ERROR),
        call(org, noon(2), cost="0.5000000000", latency_ms=1000),
        # the 3 days before
        call(org, noon(3), cost="1.0000000000", latency_ms=100),
        call(org, noon(5), cost="1.0000000000", latency_ms=300),
        # not ours: must not count anywhere
        call(other_org, noon(0), cost="99.0000000000", latency_ms=90_000),
        call(other_org, noon(4), cost="99.0000000000", latency_ms=90_000),
    )


def test_headline_selector(org, two_periods, days):
    _, current = days
    h = overview_headline(organization=org, period=current)
    assert h.previous_period == Period(
        current.start - timedelta(days=3), current.start - timedelta(days=1), current.zone
    )
    assert (h.current.cost, h.previous.cost) == (4, 2)
    assert (h.current.calls, h.previous.calls) == (4, 2)
    assert str(h.error_rate) == "0.2500" and str(h.previous_error_rate) == "0.0000"
    assert (h.latency.p50_ms, h.latency.p95_ms) == (200, 1000)
    assert (h.previous_latency.p50_ms, h.previous_latency.p95_ms) == (100, 300)
    assert not h.latency.partial


def test_latency_sample_is_the_latest_calls(org, two_periods, days):
    _, current = days
    # Only the 2 latest calls of the period: noon(0) 100 ms, then noon(1) (200 and 300).
    latency = latency_percentiles(organization=org, period=current, calls=4, sample=2)
    assert latency.sampled == 2 and latency.partial
    assert latency.p95_ms in (200, 300) and latency.p50_ms == 100


def test_overview_page_shows_the_chosen_period(owner_client, two_periods, days):
    _, current = days
    page = owner_client.get(
        f"/dashboard/?start_date={current.start.isoformat()}&end_date={current.end.isoformat()}"
    ).content.decode()
    head = page[page.index('id="headline"') : page.index('id="spend-cards"')]
    assert ">$4.00</span>" in head and "×2.0" in head and "vs $2.00" in head
    assert "25.0 %" in head and "vs 0.0 %" in head
    assert "200 ms" in head and "1.0 s" in head and "×3.3" in head  # p95 1000 vs 300
    assert "99" not in head  # the other organization's calls
    assert 'id="calls-chart"' in page and '"overlay"' in page


def test_latency_sample_under_a_status_filter_reads_only_the_index(org, two_periods, days):
    """ue_org_status carries latency_ms: the sample of a status filter needs
    no row of the table (at 10M events, ~20,000 heap pages read at random).
    A handful of rows leave the planner free to scan the table, so the plan
    is asked for with scans of the table itself priced out."""
    from analytics.params import UsageFilters
    from analytics.selectors._common import event_source

    _, current = days
    filters = UsageFilters(status=Status.UPSTREAM_ERROR)
    qs = event_source(organization=org, period=current, filters=filters)
    sample = qs.order_by("-created_at").values_list("latency_ms", flat=True)[:20_000]
    plan = plan_without(sample, "seqscan", "bitmapscan")
    if connection.vendor == "postgresql":
        assert "Index Only Scan using ue_org_status" in plan, plan
    else:  # SQLite has no INCLUDE: the index still answers the filter and the order
        assert "USING INDEX ue_org_status" in plan, plan
    assert list(sample) == [300]
