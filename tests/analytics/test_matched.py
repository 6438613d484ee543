"""One pass over the events a filter matches (analytics.selectors.matched):
a page's answers read from its copy of the matching calls equal a plain SQL
GROUP BY over the ledger (the oracle, written here), per breakdown, for the
period and the one before; a second organization's look-alike calls never
count; the copy is read instead of the ledger, and gone after the page."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics import selectors
from analytics.models import MatchedEvent, UsageEvent
from analytics.params import UsageFilters
from analytics.periods import Period, period_preset
from analytics.selectors import matched as matched_module
from analytics.selectors.headline import latency_percentiles, nearest_rank
from tests.analytics.conftest import call

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the copy is PostgreSQL's temporary table"
)

MODELS = [("gpt-4o", "openai"), ("claude-opus-4", "anthropic"), ("gemini-2.5-pro", "gemini")]
STATUSES = ["success", "success", "upstream_error", "timeout"]
COST_MIN = Decimal("0.03")
LATENCY_MAX = 900
# Each dimension a breakdown groups by, as the oracle's SQL spells it.
ORACLE_KEYS = {
    "model": "model",
    "provider": "provider",
    "customer": "customer_id",
    "feature": "feature",
    "environment": "environment",
    "key": "COALESCE(api_key_id, 0)",
    "status": "status",
}
ORACLE_SUMS = (
    "COUNT(*)",
    "COUNT(*) FILTER (WHERE NOT priced)",
    "COUNT(*) FILTER (WHERE streamed)",
    "COUNT(*) FILTER (WHERE status <> 'success')",
    "SUM(input_tokens)",
    "SUM(output_tokens)",
    "SUM(cached_input_tokens)",
    "SUM(reasoning_tokens)",
    "SUM(cost)",
    "SUM(latency_ms)",
)
TOTALS_FIELDS = (
    "calls",
    "unpriced_calls",
    "streamed_calls",
    "error_calls",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cost",
    "latency_ms_sum",
)


@pytest.fixture
def ledger(org, other_org, api_key, other_api_key, ingest):
    """90 calls over 45 days (the 30-day period and the one before), every
    dimension varied; a second organization's calls with look-alike values,
    all of them inside the filter."""
    now = timezone.now()
    ours = [
        call(
            org,
            now - timedelta(days=n % 45, minutes=7 + n),
            cost=None if n % 17 == 0 else f"{(n % 11) * 0.009 + 0.001:.10f}",
            model=MODELS[n % 3][0],
            provider=MODELS[n % 3][1],
            customer_id=["alpha", "beta", "gamma", ""][n % 4],
            feature=["chat", "search", ""][n % 5 % 3],
            environment=["production", "staging"][n % 2],
            status=STATUSES[n % 7 % 4],
            api_key_id=api_key.row.pk if n % 3 != 1 else None,
            input_tokens=100 + n,
            output_tokens=10 + n % 13,
            latency_ms=100 + (n * 37) % 1000,
            streamed=n % 5 == 0,
        )
        for n in range(90)
    ]
    theirs = [
        call(
            other_org,
            now - timedelta(days=n, hours=1),
            cost="5.0000000000",
            model="gpt-4o",
            customer_id="alpha",
            feature="chat",
            api_key_id=other_api_key.row.pk,
            latency_ms=500,
        )
        for n in range(40)
    ]
    ingest(*ours, *theirs)
    return ours


def _oracle(org, period: Period, key: str | None = None) -> dict:
    """Totals per `key` (an ORACLE_KEYS expression, or None: one row) of the
    organization's calls in `period` with cost ≥ COST_MIN and latency ≤
    LATENCY_MAX: plain SQL over the ledger."""
    group = f"{key}," if key else "'',"
    sql = (
        f"SELECT {group} {', '.join(ORACLE_SUMS)} FROM {UsageEvent._meta.db_table} "  # noqa: S608
        "WHERE organization_id = %s AND created_at >= %s AND created_at < %s "
        "AND cost >= %s AND latency_ms <= %s GROUP BY 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [org.pk, period.start_utc, period.end_utc, COST_MIN, LATENCY_MAX])
        rows = cursor.fetchall()
    return {
        row[0]: {name: (value or 0) for name, value in zip(TOTALS_FIELDS, row[1:], strict=True)}
        for row in rows
    }


def _daily_oracle(org, period: Period) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (created_at AT TIME ZONE %s)::date, COUNT(*), SUM(cost) "  # noqa: S608
            f"FROM {UsageEvent._meta.db_table} WHERE organization_id = %s "
            "AND created_at >= %s AND created_at < %s AND cost >= %s AND latency_ms <= %s "
            "GROUP BY 1",
            [str(period.zone), org.pk, period.start_utc, period.end_utc, COST_MIN, LATENCY_MAX],
        )
        return {day: (calls, cost) for day, calls, cost in cursor.fetchall()}


def _latencies(org, period: Period) -> list[int]:
    return sorted(
        UsageEvent.objects.filter(
            organization=org,
            created_at__gte=period.start_utc,
            created_at__lt=period.end_utc,
            cost__gte=COST_MIN,
            latency_ms__lte=LATENCY_MAX,
        ).values_list("latency_ms", flat=True)
    )


def _as_dict(totals) -> dict:
    return {name: getattr(totals, name) for name in TOTALS_FIELDS}


FILTERS = UsageFilters(cost_min=COST_MIN, latency_max=LATENCY_MAX)


def _answers(org, period: Period, filters: UsageFilters) -> dict:
    """What the overview and the API summary read, for the period and the one before."""
    out: dict = {}
    for name, p in (("current", period), ("previous", period.previous())):
        out[name] = _as_dict(selectors.spend_totals(organization=org, period=p, filters=filters))
        for by in ORACLE_KEYS:
            rows = selectors.spend_breakdown(organization=org, period=p, by=by, filters=filters)
            out[f"{name} by {by}"] = {row.key: _as_dict(row) for row in rows}
        daily = selectors.spend_daily(organization=org, period=p, filters=filters)
        out[f"{name} daily"] = {d.key: (d.calls, d.cost) for d in daily.days if d.calls}
        latency = latency_percentiles(organization=org, period=p, calls=0, filters=filters)
        out[f"{name} latency"] = (latency.sampled, latency.p50_ms, latency.p95_ms)
    ranked = selectors.spend_ranking(
        organization=org, period=period, by="customer", filters=filters, limit=2
    )
    out["top customers"] = ([row.key for row in ranked.rows], ranked.count)
    split = selectors.spend_daily(organization=org, period=period, filters=filters, by="model")
    out["daily by model"] = split.series
    forecast = selectors.spend_forecast(organization=org, filters=filters)
    out["forecast"] = (forecast.month_to_date, forecast.daily_average)
    return out


def _expected(org, period: Period) -> dict:
    out: dict = {}
    for name, p in (("current", period), ("previous", period.previous())):
        none = dict.fromkeys(TOTALS_FIELDS, 0)
        out[name] = _oracle(org, p).get("", none)
        for by, key in ORACLE_KEYS.items():
            out[f"{name} by {by}"] = _oracle(org, p, key)
        out[f"{name} daily"] = _daily_oracle(org, p)
        values = _latencies(org, p)
        out[f"{name} latency"] = (len(values), nearest_rank(values, 50), nearest_rank(values, 95))
    return out


def _periods(org, period: Period) -> list[Period]:
    return [period, period.previous(), *selectors.forecast_periods(organization=org)]


def test_one_pass_answers_equal_a_group_by_over_the_ledger(org, ledger):
    period = period_preset(org, "30d")
    expected = _expected(org, period)
    assert expected["current"]["calls"] and expected["previous"]["calls"]
    assert len(expected["current by customer"]) > 2  # the ranking below cuts

    with (
        CaptureQueriesContext(connection) as queries,
        selectors.events_matched(
            organization=org, filters=FILTERS, periods=_periods(org, period)
        ) as filters,
    ):
        assert filters.matched is not None
        copied = _answers(org, period, filters)
    ledger_answers = _answers(org, period, FILTERS)  # the page as it read before

    for name, wanted in expected.items():
        assert copied[name] == wanted, name
    assert copied == ledger_answers
    # One pass: the ledger's events are read once (the copy); every answer
    # above read the copy.
    events_table = UsageEvent._meta.db_table
    reads = [q["sql"] for q in queries.captured_queries if events_table in q["sql"]]
    assert len(reads) == 1 and reads[0].startswith("CREATE TEMPORARY TABLE")
    assert sum(MatchedEvent._meta.db_table in q["sql"] for q in queries.captured_queries) > 20
    assert not _table_exists()


def test_the_other_organization_reads_its_own_calls_not_the_copy(org, other_org, ledger):
    period = period_preset(org, "30d")
    with selectors.events_matched(
        organization=org, filters=FILTERS, periods=_periods(org, period)
    ) as filters:
        assert filters.matched is not None
        theirs = selectors.spend_totals(organization=other_org, period=period, filters=filters)
        ours = selectors.spend_totals(organization=org, period=period, filters=filters)
        # Nor does the copy hold any row of theirs.
        assert not MatchedEvent.objects.exclude(organization=org).exists()
    expected = _oracle(other_org, period)[""]
    assert expected["calls"] >= 29  # every one of their calls passes the filter
    assert (theirs.calls, theirs.cost) == (expected["calls"], expected["cost"])
    assert ours.calls == _oracle(org, period)[""]["calls"]


def test_a_period_outside_the_copy_and_other_filters_read_the_ledger(org, ledger):
    period = period_preset(org, "30d")
    older = period.previous().previous()
    narrower = UsageFilters(cost_min=COST_MIN, latency_max=LATENCY_MAX, model="gpt-4o")
    with (
        selectors.events_matched(organization=org, filters=FILTERS, periods=[period]) as filters,
        CaptureQueriesContext(connection) as queries,
    ):
        outside = selectors.spend_totals(organization=org, period=older, filters=filters)
        other = selectors.spend_totals(organization=org, period=period, filters=narrower)
    assert all(MatchedEvent._meta.db_table not in q["sql"] for q in queries.captured_queries)
    assert outside.calls == _oracle(org, older).get("", {"calls": 0})["calls"]
    assert other.calls == _oracle(org, period, "model")["gpt-4o"]["calls"]


def test_no_copy_when_the_rollups_answer_or_the_match_is_too_big(org, ledger, monkeypatch):
    period = period_preset(org, "30d")
    for filters in (UsageFilters(), UsageFilters(model="gpt-4o")):
        with selectors.events_matched(organization=org, filters=filters, periods=[period]) as f:
            assert f is filters
    monkeypatch.setattr(matched_module, "MATCHED_MAX_ROWS", 3)
    with selectors.events_matched(organization=org, filters=FILTERS, periods=[period]) as f:
        assert f.matched is None and not _table_exists()
        totals = selectors.spend_totals(organization=org, period=period, filters=f)
    assert totals.calls == _oracle(org, period)[""]["calls"]


def test_an_error_inside_rolls_the_copy_back_and_the_next_page_copies_again(org, ledger):
    period = period_preset(org, "30d")
    with (
        pytest.raises(ZeroDivisionError),
        selectors.events_matched(organization=org, filters=FILTERS, periods=[period]),
    ):
        assert _table_exists()
        _ = 1 / 0
    assert not _table_exists()
    with selectors.events_matched(organization=org, filters=FILTERS, periods=[period]) as f:
        assert f.matched is not None
        totals = selectors.spend_totals(organization=org, period=period, filters=f)
    assert totals.calls == _oracle(org, period)[""]["calls"]


def test_pages_under_a_range_filter_show_the_oracle(owner_client, org, ledger):
    period = period_preset(org, "30d")
    query = f"cost_min={COST_MIN}&latency_max={LATENCY_MAX}"
    expected = _oracle(org, period)[""]
    overview = owner_client.get(f"/dashboard/?{query}")
    headline = overview.context["headline"]
    assert (headline.current.calls, headline.current.cost) == (
        expected["calls"],
        expected["cost"],
    )
    summary = owner_client.get(f"/api/costs/summary?start_date={period.start}&{query}").json()
    assert (summary["total_calls"], Decimal(summary["total_cost"])) == (
        expected["calls"],
        expected["cost"],
    )
    by_model = _oracle(org, period, "model")
    assert {row["model"]: Decimal(row["cost"]) for row in summary["by_model"]} == {
        key: row["cost"] for key, row in by_model.items()
    }


def test_the_copy_has_the_ledger_s_column_types():
    for field in MatchedEvent._meta.concrete_fields:
        theirs = UsageEvent._meta.get_field(field.name)
        assert field.column == theirs.column
        assert field.db_type(connection) == theirs.db_type(connection), field.name


def test_merged_spans_join_overlapping_and_adjacent_periods(org):
    month = period_preset(org, "30d")
    day = timedelta(days=1)
    zone = month.zone
    far = Period(month.start - 100 * day, month.start - 90 * day, zone)
    spans = matched_module.merged_spans([month, month.previous(), far])
    assert spans == (far, Period(month.previous().start, month.end, zone))


def _table_exists() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [f"pg_temp.{MatchedEvent._meta.db_table}"])
        return cursor.fetchone()[0] is not None
