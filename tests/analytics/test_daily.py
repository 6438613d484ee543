"""The daily tables (analytics.fold) always equal the hourly rollups
re-grouped by local day: after ingest, after a zone change, after re-pricing."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Organization
from analytics import selectors
from analytics.fold import (
    daily_rollups_rebuild,
    daily_rollups_rebuild_pending,
    rollups_fold_until_done,
)
from analytics.intervals import daily_ready, period_spans, span_last_day, spans_of
from analytics.models import (
    CustomerRollup,
    DailyCoarseRollup,
    DailyModelRollup,
    HourlyCoarseRollup,
    HourlyRollup,
    RollupDelta,
    Span,
    Status,
    UsageEvent,
)
from analytics.periods import Period
from analytics.rollups import DELTA, HOURLY, unshaped
from analytics.services import usage_record_batch
from tests.analytics.conftest import call
from tests.analytics.oracle import oracle

BUCKET_FIELDS = HOURLY.key
COUNTER_FIELDS = HOURLY.counters

COARSE = ("provider", "model", "feature", "environment", "api_key_id", "status")
CUSTOMER_COUNTERS = ("calls", "unpriced_calls", "error_calls", "input_tokens", "cost")


def test_period_spans_hold_exactly_the_periods_days():
    rng = random.Random(3)
    for _ in range(2000):
        start = date(2025, 1, 1) + timedelta(days=rng.randrange(600))
        end = start + timedelta(days=rng.randrange(120))
        today = start + timedelta(days=rng.randrange(-5, 150))
        spans = period_spans(Period(start, end, ZoneInfo("UTC")), today=today)
        days = [
            start_day + timedelta(days=n)
            for span, start_day in spans
            for n in range((span_last_day(span, start_day) - start_day).days + 1)
        ]
        assert len(days) == len(set(days)), "intervals overlap"
        wanted = {start + timedelta(days=n) for n in range((end - start).days + 1)}
        assert wanted <= set(days)
        # days beyond the period only where nothing can have been recorded yet
        assert all(day > today for day in set(days) - wanted)
        assert all(span_start == dict(spans_of(span_start))[span] for span, span_start in spans)


def test_a_rolling_month_is_a_handful_of_intervals():
    period = Period(date(2026, 10, 25), date(2026, 11, 23), ZoneInfo("UTC"))
    spans = period_spans(period, today=date(2026, 11, 23))
    assert spans == [
        (Span.DAY, date(2026, 10, 25)),
        (Span.WEEK, date(2026, 10, 26)),
        (Span.WEEK, date(2026, 11, 2)),
        (Span.WEEK, date(2026, 11, 9)),
        (Span.WEEK, date(2026, 11, 16)),
        (Span.WEEK, date(2026, 11, 23)),
    ]
    month = Period(date(2026, 11, 1), date(2026, 11, 23), ZoneInfo("UTC"))
    assert period_spans(month, today=date(2026, 11, 23)) == [(Span.MONTH, date(2026, 11, 1))]
    # a past period never reads past its end
    past = period_spans(month, today=date(2026, 12, 5))
    assert (Span.MONTH, date(2026, 11, 1)) not in past


def regrouped(org) -> tuple[dict, dict, dict]:
    """What the daily tables must hold, from the events alone (tests/analytics/oracle.py)."""
    tables = oracle(org)
    return tables["coarse"], tables["models"], tables["customers"]


def stored(org) -> tuple[dict, dict, dict]:
    coarse = {
        (row["day"], *(row[name] for name in COARSE)): {n: row[n] for n in COUNTER_FIELDS}
        for row in map(dict, DailyCoarseRollup.objects.filter(organization=org).values())
    }
    models = {
        (r["day"], r["provider"], r["model"], r["feature"]): {
            n: r[n] for n in (*COUNTER_FIELDS, "error_calls")
        }
        for r in map(dict, DailyModelRollup.objects.filter(organization=org).values())
    }
    customers = {
        (r["span"], r["start"], r["dimension"], r["value"], r["customer_id"]): {
            n: r[n] for n in CUSTOMER_COUNTERS
        }
        for r in map(dict, CustomerRollup.objects.filter(organization=org).values())
    }
    return _plain(coarse), _plain(models), _plain(customers)


def _plain(table: dict) -> dict:
    return {key: {n: Decimal(v) for n, v in sums.items()} for key, sums in table.items()}


@pytest.fixture
def paris(org):
    org.timezone = "Europe/Paris"
    org.save()
    daily_rollups_rebuild(org.pk)
    org.refresh_from_db()
    return org


def _calls(org, rng, start: datetime, hours: int, n: int):
    return [
        call(
            org,
            start + timedelta(minutes=rng.randrange(hours * 60)),
            customer_id=rng.choice(["", "a", "b", "c"]),
            model=rng.choice(["gpt-4o", "o3"]),
            feature=rng.choice(["", "chat"]),
            status=rng.choice([Status.SUCCESS, Status.SUCCESS, Status.TIMEOUT]),
            cost=None if rng.random() < 0.2 else f"{rng.randint(1, 9999) / 1e5:.5f}",
        )
        for _ in range(n)
    ]


def test_daily_tables_equal_the_hourly_ones_across_dst(paris, other_org, ingest):
    rng = random.Random(11)
    # Oct 24 – Nov 2, 2026: Europe/Paris leaves summer time on Oct 25
    ingest(*_calls(paris, rng, datetime(2026, 10, 24, tzinfo=UTC), 24 * 9, 300))
    ingest(*_calls(other_org, rng, datetime(2026, 10, 24, tzinfo=UTC), 24 * 9, 40))
    assert stored(paris) == regrouped(paris)
    assert stored(other_org) == regrouped(other_org)
    assert DailyCoarseRollup.objects.filter(organization=paris).count() < (
        HourlyCoarseRollup.objects.filter(organization=paris).count()
    )


def test_a_zone_change_rebuilds_only_that_organization(paris, other_org, ingest):
    rng = random.Random(5)
    ingest(*_calls(paris, rng, datetime(2026, 10, 24, tzinfo=UTC), 24 * 9, 200))
    ingest(*_calls(other_org, rng, datetime(2026, 10, 24, tzinfo=UTC), 24 * 9, 50))
    others = stored(other_org)
    period = Period(date(2026, 10, 24), date(2026, 11, 1), ZoneInfo("Asia/Kolkata"))

    Organization.objects.filter(pk=paris.pk).update(timezone="Asia/Kolkata")  # +5:30
    paris.refresh_from_db()
    assert not daily_ready(paris)
    hourly_answer = selectors.spend_daily(organization=paris, period=period, by="model")
    assert daily_rollups_rebuild_pending() == [paris.pk]
    paris.refresh_from_db()
    assert paris.rollup_timezone == "Asia/Kolkata" and daily_ready(paris)
    assert stored(paris) == regrouped(paris)
    assert stored(other_org) == others
    daily_answer = selectors.spend_daily(organization=paris, period=period, by="model")
    assert daily_answer.days == hourly_answer.days
    assert daily_answer.series == hourly_answer.series
    # later batches are keyed in the new zone
    ingest(*_calls(paris, rng, datetime(2026, 11, 1, 18, tzinfo=UTC), 2, 30))
    assert stored(paris) == regrouped(paris)


def test_a_new_zone_is_rekeyed_by_the_fold_sweep(org, ingest):
    ingest(call(org, datetime(2026, 11, 2, 23, 30, tzinfo=UTC), customer_id="a"))
    org.timezone = "Asia/Tokyo"
    org.save()
    assert daily_rollups_rebuild_pending() == [org.pk]
    org.refresh_from_db()
    assert org.rollup_timezone == "Asia/Tokyo"
    assert list(
        DailyCoarseRollup.objects.filter(organization=org).values_list("day", flat=True)
    ) == [date(2026, 11, 3)]


def test_changes_to_hourly_rows_reach_the_derived_tables(paris, ingest):
    """What analytics.repricing does: set a bucket's cost in place, append the
    difference to the delta log; the fold carries it to the derived tables."""
    ingest(
        call(paris, datetime(2026, 11, 2, 1, tzinfo=UTC), cost=None, model="new", customer_id="a"),
        call(
            paris, datetime(2026, 11, 2, 1, 5, tzinfo=UTC), cost=None, model="new", customer_id="b"
        ),
    )
    changes = {}
    for fine in HourlyRollup.objects.filter(organization=paris):
        change = dict.fromkeys(COUNTER_FIELDS, 0)
        change["cost"] = Decimal("0.5000000000") - fine.cost
        change["unpriced_calls"] = -fine.unpriced_calls
        fine.cost, fine.unpriced_calls = Decimal("0.5000000000"), 0
        fine.save(update_fields=["cost", "unpriced_calls"])
        changes[tuple(getattr(fine, name) for name in BUCKET_FIELDS)] = change

    # The events themselves now cost 0.5 each, as re-pricing would set them.
    UsageEvent.objects.filter(organization=paris).update(cost=Decimal("0.5"), priced=True)
    DELTA.append(unshaped(changes))  # costs only: no shape changes
    rollups_fold_until_done()

    coarse = HourlyCoarseRollup.objects.get(organization=paris)
    assert (coarse.cost, coarse.unpriced_calls, coarse.calls) == (Decimal(1), 0, 2)
    assert stored(paris) == regrouped(paris)
    period = Period(date(2026, 11, 2), date(2026, 11, 2), ZoneInfo("Europe/Paris"))
    assert selectors.unpriced_summary(organization=paris, period=period).calls == 0
    assert selectors.spend_totals(organization=paris, period=period).cost == Decimal(1)


# --- Property: every rollup equals a plain GROUP BY over the events ---------------

ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")
WINDOW_START = datetime(2026, 10, 20, tzinfo=UTC)  # Paris's and New York's DST ends inside
event_strategy = st.tuples(
    st.integers(0, 1),  # organization
    st.integers(0, 16 * 24 * 60 - 1),  # minute in the window
    st.sampled_from(["", "a", "b"]),
    st.sampled_from(["gpt-4o", "o3"]),
    st.sampled_from(["", "chat"]),
    st.sampled_from([Status.SUCCESS, Status.TIMEOUT]),
    st.one_of(st.none(), st.integers(1, 99_999)),  # cost in 1e-7 USD, None: unpriced
    st.integers(0, 5000),  # input tokens
)


def all_tables(org) -> dict[str, dict]:
    coarse, models, customers = stored(org)
    hourly = {
        (r["hour"], *(r[n] for n in COARSE), r["customer_id"]): {n: r[n] for n in COUNTER_FIELDS}
        for r in map(dict, HourlyRollup.objects.filter(organization=org).values())
    }
    hourly_coarse = {
        (r["hour"], *(r[n] for n in COARSE)): {n: r[n] for n in COUNTER_FIELDS}
        for r in map(dict, HourlyCoarseRollup.objects.filter(organization=org).values())
    }
    return {
        "hourly": _plain(hourly),
        "hourly_coarse": _plain(hourly_coarse),
        "coarse": coarse,
        "models": models,
        "customers": customers,
    }


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=st.lists(event_strategy, min_size=1, max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=4),
    zones=st.tuples(st.sampled_from(ZONES), st.sampled_from(ZONES)),
    rezone=st.one_of(st.none(), st.integers(0, 40), st.sampled_from(ZONES)),
    data=st.data(),
)
def test_every_rollup_equals_a_group_by_over_the_events(
    org, other_org, events, cuts, zones, rezone, data
):
    orgs = (org, other_org)
    for model in (UsageEvent, HourlyRollup, HourlyCoarseRollup, DailyCoarseRollup):
        model.objects.filter(organization__in=orgs).delete()
    for model in (DailyModelRollup, CustomerRollup, RollupDelta):
        model.objects.filter(organization__in=orgs).delete()
    for each, zone in zip(orgs, zones, strict=True):
        Organization.objects.filter(pk=each.pk).update(timezone=zone, rollup_timezone=zone)
    records = [
        call(
            orgs[o],
            WINDOW_START + timedelta(minutes=minute),
            customer_id=customer,
            model=model,
            feature=feature,
            status=status,
            cost=None if cost is None else str(Decimal(cost).scaleb(-7)),
            input_tokens=tokens,
        )
        for o, minute, customer, model, feature, status, cost, tokens in events
    ]
    # Batches of any size; the fold runs after some of them, never at all
    # between others; once, maybe, the first organization changes zone.
    bounds = sorted({0, len(records), *(c for c in cuts if c < len(records))})
    for first, end in itertools.pairwise(bounds):
        usage_record_batch(records[first:end])
        if data.draw(st.booleans(), label="fold now"):
            rollups_fold_until_done()
        if isinstance(rezone, int) and rezone == end:
            Organization.objects.filter(pk=org.pk).update(timezone="Asia/Tokyo")
            daily_rollups_rebuild_pending()
    if isinstance(rezone, str):
        Organization.objects.filter(pk=org.pk).update(timezone=rezone)
        daily_rollups_rebuild_pending()
    rollups_fold_until_done()
    # Folded means folded: nothing of either organization is left to count again.
    assert not RollupDelta.objects.filter(organization__in=orgs).exists()
    for each in orgs:
        each.refresh_from_db()
        assert daily_ready(each)
        assert all_tables(each) == {name: _plain(t) for name, t in oracle(each).items()}
