"""Selectors against hand-computed totals (rollups written by the real ledger path)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.http import Http404

from analytics import selectors
from analytics.models import Status
from analytics.params import UsageFilters
from analytics.periods import Period
from tests.analytics.conftest import call

UTCZ = ZoneInfo("UTC")
NY = ZoneInfo("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def nov(org, ingest):
    """Calls in Nov 2026 (UTC org) and two in the previous period (Oct 26–31)."""
    ingest(
        call(org, utc(2026, 11, 1, 9), cost="0.1234567891", customer_id="acme", feature="chat"),
        call(org, utc(2026, 11, 1, 9, 30), cost="0.0000000009", customer_id="acme"),
        call(
            org,
            utc(2026, 11, 3, 23, 59),
            cost="1.5000000000",
            model="claude-sonnet-4",
            provider="anthropic",
            customer_id="globex",
            feature="search",
        ),
        call(org, utc(2026, 11, 6, 0, 0), cost="2.0000000000", model="gpt-4o-mini"),
        call(org, utc(2026, 11, 4, 12), cost=None, model="mystery-1", status=Status.UPSTREAM_ERROR),
        # previous equal period of Nov 1–6 is Oct 26–31
        call(org, utc(2026, 10, 31, 23, 59), cost="0.8000000000"),
        call(org, utc(2026, 10, 26, 0, 0), cost="0.2000000000"),
        call(org, utc(2026, 10, 25, 23, 59), cost="9.0000000000"),  # before both periods
    )


PERIOD = Period(date(2026, 11, 1), date(2026, 11, 6), UTCZ)


def test_totals_and_change_vs_previous_period(org, nov):
    summary = selectors.spend_summary(organization=org, period=PERIOD)

    assert summary.current.cost == Decimal("3.6234567900")
    assert summary.current.calls == 5
    assert summary.current.unpriced_calls == 1
    assert summary.current.error_calls == 1
    assert summary.current.tokens == 5 * 110
    assert summary.previous.cost == Decimal("1.0000000000")
    assert summary.previous.calls == 2
    assert summary.change == Decimal("2.6235")  # (3.62345679 - 1) / 1


def test_change_is_none_without_previous_spend(org, ingest):
    ingest(call(org, utc(2026, 11, 2, 5)))
    assert selectors.spend_summary(organization=org, period=PERIOD).change is None


def test_breakdowns_by_model_and_customer(org, nov):
    by_model = selectors.spend_breakdown(organization=org, period=PERIOD, by="model")
    assert [(r.key, r.cost, r.calls) for r in by_model] == [
        ("gpt-4o-mini", Decimal("2.0000000000"), 1),
        ("claude-sonnet-4", Decimal("1.5000000000"), 1),
        ("gpt-4o", Decimal("0.1234567900"), 2),
        ("mystery-1", Decimal("0E-10"), 1),
    ]
    by_customer = selectors.spend_breakdown(
        organization=org, period=PERIOD, by="customer", order="name"
    )
    assert [(r.key, r.cost) for r in by_customer] == [
        ("", Decimal("2.0000000000")),
        ("acme", Decimal("0.1234567900")),
        ("globex", Decimal("1.5000000000")),
    ]
    by_provider = selectors.spend_breakdown(organization=org, period=PERIOD, by="provider")
    assert [(r.key, r.calls) for r in by_provider] == [("openai", 4), ("anthropic", 1)]
    assert selectors.spend_breakdown_count(organization=org, period=PERIOD, by="customer") == 3
    searched = selectors.spend_breakdown(
        organization=org, period=PERIOD, by="customer", search="GLO"
    )
    assert [r.key for r in searched] == ["globex"]


def test_daily_series_is_zero_filled_and_split(org, nov):
    daily = selectors.spend_daily(organization=org, period=PERIOD, by="model", top=2)

    assert [d.key for d in daily.days] == [date(2026, 11, n) for n in range(1, 7)]
    assert [d.cost for d in daily.days] == [
        Decimal("0.1234567900"),
        Decimal(0),
        Decimal("1.5000000000"),
        Decimal(0),
        Decimal(0),
        Decimal("2.0000000000"),
    ]
    assert list(daily.series) == ["gpt-4o-mini", "claude-sonnet-4", selectors.OTHER]
    assert daily.series[selectors.OTHER][0] == Decimal("0.1234567900")
    assert sum(daily.series["claude-sonnet-4"]) == Decimal("1.5")


def test_daily_series_across_dst_change_in_org_zone(org, ingest):
    """America/New_York leaves DST on 2026-11-01: that local day has 25 hours."""
    org.timezone = "America/New_York"
    org.save()
    ingest(
        call(org, utc(2026, 11, 1, 4, 0), cost="1.0000000000"),  # 00:00 EDT Nov 1
        call(org, utc(2026, 11, 1, 5, 30), cost="2.0000000000"),  # 01:30 EDT (1st one)
        call(org, utc(2026, 11, 1, 6, 30), cost="4.0000000000"),  # 01:30 EST (2nd one)
        call(org, utc(2026, 11, 2, 4, 59), cost="8.0000000000"),  # 23:59 EST Nov 1
        call(org, utc(2026, 11, 2, 5, 0), cost="16.0000000000"),  # 00:00 EST Nov 2
        call(org, utc(2026, 11, 1, 3, 59), cost="32.0000000000"),  # 23:59 EDT Oct 31
    )
    period = Period(date(2026, 10, 29), date(2026, 11, 3), NY)

    daily = selectors.spend_daily(organization=org, period=period)

    assert [(d.key.isoformat(), str(d.cost)) for d in daily.days] == [
        ("2026-10-29", "0E-10"),
        ("2026-10-30", "0E-10"),
        ("2026-10-31", "32.0000000000"),
        ("2026-11-01", "15.0000000000"),
        ("2026-11-02", "16.0000000000"),
        ("2026-11-03", "0E-10"),
    ]
    one_day = selectors.spend_totals(
        organization=org, period=Period(date(2026, 11, 1), date(2026, 11, 1), NY)
    )
    assert one_day.cost == Decimal(15) and one_day.calls == 4


def test_forecast_uses_month_to_date_and_recent_daily_average(org, ingest):
    # 10.00 a day on Nov 1–7 (UTC org); now = Nov 8 12:00, so Nov 8 counts half a day left.
    ingest(*(call(org, utc(2026, 11, d, 10), cost="10.0000000000") for d in range(1, 8)))
    ingest(call(org, utc(2026, 11, 8, 1), cost="3.0000000000"))

    forecast = selectors.spend_forecast(organization=org, now=utc(2026, 11, 8, 12))

    assert forecast.month_to_date == Decimal("73.0000000000")
    assert forecast.daily_average == Decimal("10.0000000000")
    assert forecast.days_left == Decimal("22.50")
    assert forecast.projected == Decimal("298.0000000000")


def test_peaks_are_by_local_weekday_and_hour(org, ingest):
    org.timezone = "Asia/Tokyo"
    org.save()
    ingest(call(org, utc(2026, 11, 2, 15, 10)), call(org, utc(2026, 11, 2, 15, 50)))
    # 15:xx UTC Monday = 00:xx JST Tuesday
    peaks = selectors.usage_peaks(
        organization=org,
        period=Period(date(2026, 11, 1), date(2026, 11, 7), ZoneInfo("Asia/Tokyo")),
    )
    assert peaks.calls[1][0] == 2
    assert peaks.max_calls == 2


def test_unpriced_models(org, nov, ingest):
    ingest(call(org, utc(2026, 11, 5, 1), cost=None, model="mystery-2"))
    ingest(call(org, utc(2026, 11, 5, 2), cost=None, model="mystery-2"))
    unpriced = selectors.unpriced_summary(organization=org, period=PERIOD)
    assert unpriced.calls == 3
    assert unpriced.models == [("mystery-2", 2), ("mystery-1", 1)]


def test_dimension_detail_and_404_for_unknown_or_other_org(org, other_org, nov, ingest):
    ingest(call(other_org, utc(2026, 11, 2, 1), customer_id="theirs"))

    detail = selectors.dimension_detail(
        organization=org, by="customer", value="acme", period=PERIOD
    )
    assert detail.totals.calls == 2
    assert detail.totals.avg_cost_per_call == Decimal("0.0617283950")
    assert [r.key for r in detail.breakdowns["model"]] == ["gpt-4o"]
    assert len(detail.recent) == 2
    assert detail.daily.days[0].cost == Decimal("0.1234567900")

    with pytest.raises(Http404):
        selectors.dimension_detail(organization=org, by="customer", value="theirs", period=PERIOD)
    with pytest.raises(Http404):
        selectors.dimension_detail(organization=org, by="model", value="nope", period=PERIOD)


def test_keyset_pages_walk_every_record_once_newest_first(org, ingest):
    base = utc(2026, 11, 3, 8)
    # Several calls share a timestamp: pk breaks the tie.
    ingest(*(call(org, base + timedelta(seconds=n // 3)) for n in range(25)))
    seen, cursor = [], None
    while True:
        page = selectors.usage_events_page(organization=org, limit=7, cursor=cursor)
        seen.extend(page.records)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 25 == len({r["id"] for r in seen})
    stamps = [(r["created_at"], r["_pk"]) for r in seen]
    assert stamps == sorted(stamps, reverse=True)
    assert list(selectors.usage_events_iter(organization=org, chunk_size=4)) == seen


def test_record_filters_and_top_expensive(org, nov):
    page = selectors.usage_events_page(
        organization=org, filters=UsageFilters(customer_id="acme"), period=PERIOD
    )
    assert {r["customer_id"] for r in page.records} == {"acme"}
    top = selectors.requests_top_expensive(organization=org, period=PERIOD, limit=2)
    assert [r["cost"] for r in top] == [Decimal("2.0000000000"), Decimal("1.5000000000")]


def test_traces(org, other_org, ingest):
    ingest(
        call(org, utc(2026, 11, 2, 1), trace_id="t-1", cost="0.5000000000"),
        call(org, utc(2026, 11, 2, 2), trace_id="t-1", cost="0.2500000000", model="o3"),
        call(org, utc(2026, 11, 2, 3), trace_id="t-2", cost="0.1000000000"),
        call(other_org, utc(2026, 11, 2, 3), trace_id="t-1", cost="7.0000000000"),
    )
    detail = selectors.trace_detail(organization=org, trace_id="t-1")
    assert detail.summary.calls == 2
    assert detail.summary.cost == Decimal("0.7500000000")
    assert detail.summary.models == ["gpt-4o", "o3"]
    traces = selectors.traces_list(organization=org, period=PERIOD)
    assert [(t.trace_id, t.calls, t.cost) for t in traces] == [
        ("t-1", 2, Decimal("0.7500000000")),
        ("t-2", 1, Decimal("0.1000000000")),
    ]
    with pytest.raises(Http404):
        selectors.trace_detail(organization=other_org, trace_id="t-2")


def test_coarse_rollups_equal_fine_rollups_summed_over_customers(org, nov, ingest):
    from django.db.models import Sum

    from analytics.models import HourlyCoarseRollup, HourlyRollup

    ingest(call(org, utc(2026, 11, 1, 9, 45), cost="0.3000000000", customer_id="third"))
    fields = ("calls", "unpriced_calls", "input_tokens", "output_tokens", "latency_ms_sum")
    key = ("hour", "model", "feature", "status")

    def sums(model):
        rows = (
            model.objects.filter(organization=org)
            .values(*key)
            .annotate(**{f: Sum(f) for f in fields})
        )
        return {tuple(r[k] for k in key): tuple(r[f] for f in fields) for r in rows}

    assert sums(HourlyCoarseRollup) == sums(HourlyRollup)
    costs = [
        sum(r.cost for r in m.objects.filter(organization=org))
        for m in (HourlyCoarseRollup, HourlyRollup)
    ]
    assert costs[0] == costs[1] == Decimal("13.9234567900")
    # the customer-less table really is smaller: 9:00 gpt-4o/chat + gpt-4o/"" rows merge customers
    assert (
        HourlyCoarseRollup.objects.filter(organization=org).count()
        < HourlyRollup.objects.filter(organization=org).count()
    )
