"""The x-property-* rollups (analytics.properties): filters on one property,
alone or with coarse dimensions, are answered from them and equal an oracle
(Python over the calls the test wrote); the fold, its cardinality guard, a
zone rebuild and the migration's backfill keep them equal to the events; a
second organization's properties never show."""

from __future__ import annotations

import importlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from django.utils import timezone

from analytics import selectors
from analytics.fold import daily_rollups_rebuild, rollups_fold_until_done
from analytics.models import (
    PROPERTY_VALUE_ROLLED,
    PROPERTY_VALUES_ROLLED,
    CustomerRollup,
    PropertyCustomerDailyRollup,
    PropertyCustomerHourlyRollup,
    PropertyDailyModelRollup,
    PropertyDailyRollup,
    PropertyHourlyRollup,
    PropertyKey,
    PropertyRollupDelta,
    PropertyValue,
)
from analytics.params import UsageFilters
from analytics.periods import Period, org_zone, period_preset
from analytics.selectors._common import rollup_rows
from analytics.selectors.headline import nearest_rank, overview_headline
from analytics.selectors.tables import table_ranking
from analytics.services import usage_record_batch
from tests.analytics.conftest import call

pytestmark = pytest.mark.django_db
PLANS = ["free", "pro", "enterprise"]
MODELS = [("gpt-4o", "openai"), ("claude-opus-4", "anthropic")]
STATUSES = ["success", "success", "upstream_error"]


@pytest.fixture
def ledger(org, other_org, api_key, ingest):
    """60 calls over 5 days with plan and region properties and varied
    dimensions, and a second organization's look-alike calls."""
    now = timezone.now()
    mine = []
    for n in range(60):
        model, provider = MODELS[n % 2]
        mine.append(
            call(
                org,
                now - timedelta(days=n % 5, minutes=5 + 7 * n),
                cost=f"{(n % 7) * 0.0131 + 0.0001:.10f}",
                model=model,
                provider=provider,
                feature=["chat", "search", ""][n % 5 % 3],
                environment=["production", "staging"][n % 2],
                status=STATUSES[n % 3],
                api_key_id=api_key.row.pk if n % 4 else None,
                latency_ms=100 + n,
                customer_id=["a", "b", "c", ""][n % 4],
                properties={
                    "plan": PLANS[n % 3],
                    **({"region": "eu"} if n % 4 == 0 else {}),
                },
            )
        )
    theirs = [
        call(
            other_org,
            now - timedelta(hours=n),
            cost="5.0000000000",
            properties={"plan": "pro", "secret": "globex-only"},
        )
        for n in range(5)
    ]
    ingest(*mine, *theirs)
    return mine


def _matches(record, spec: dict) -> bool:
    for name, wanted in spec.items():
        if name == "property":
            key, _, value = wanted.partition(":")
            if record.properties.get(key) != value:
                return False
        elif name == "key_id":
            if record.api_key_id != wanted:
                return False
        elif getattr(record, name) != wanted:
            return False
    return True


def _filters(spec: dict) -> UsageFilters:
    fields = {name: value for name, value in spec.items() if name != "property"}
    if "property" in spec:
        fields["properties"] = (tuple(spec["property"].split(":", 1)),)
    return UsageFilters(**fields)


SERVED = [
    {"property": "plan:pro"},
    {"property": "region:eu"},
    {"property": "plan:free", "model": "gpt-4o"},
    {"property": "plan:enterprise", "provider": "anthropic", "status": "upstream_error"},
    {"property": "plan:pro", "environment": "staging", "feature": "chat"},
    {"property": "plan:free", "key_id": "KEY"},
]
# The filters the narrow cut (no environment, key or status) answers.
NARROW = {"provider", "model", "feature", "property"}


def test_one_property_with_coarse_filters_reads_the_rollups_and_equals_the_oracle(
    org, api_key, ledger
):
    period = period_preset(org, "30d")
    for spec in SERVED:
        if spec.get("key_id") == "KEY":
            spec = {**spec, "key_id": api_key.row.pk}
        print("filter:", spec)
        expected = [r for r in ledger if _matches(r, spec)]
        assert expected
        filters = _filters(spec)
        daily = PropertyDailyModelRollup if set(spec) <= NARROW else PropertyDailyRollup
        assert rollup_rows(organization=org, period=period, filters=filters).qs.model is daily
        for by in ("environment", "status", "key"):  # what the cut lacks
            grouped = rollup_rows(organization=org, period=period, filters=filters, by=by)
            assert grouped.qs.model is PropertyDailyRollup
        hours = rollup_rows(organization=org, period=period, filters=filters, hourly=True)
        assert hours.qs.model is PropertyHourlyRollup

        totals = selectors.spend_totals(organization=org, period=period, filters=filters)
        assert (totals.calls, totals.cost) == (len(expected), sum(r.cost for r in expected))
        assert totals.error_calls == sum(1 for r in expected if r.status != "success")
        assert totals.latency_ms_sum == sum(r.latency_ms for r in expected)

        by_model = defaultdict(Decimal)
        for r in expected:
            by_model[r.model] += r.cost
        rows = selectors.spend_breakdown(
            organization=org, period=period, by="model", filters=filters
        )
        assert {row.key: row.cost for row in rows} == dict(by_model)

        by_status = defaultdict(int)
        for r in expected:
            by_status[r.status] += 1
        rows = selectors.spend_breakdown(
            organization=org, period=period, by="status", filters=filters
        )
        assert {row.key: row.calls for row in rows} == dict(by_status)

        per_day = defaultdict(int)
        for r in expected:
            per_day[timezone.localtime(r.created_at, period.zone).date()] += 1
        days = selectors.spend_daily(organization=org, period=period, filters=filters)
        assert {d.key: d.calls for d in days.days if d.calls} == dict(per_day)

        peaks = selectors.usage_peaks(organization=org, period=period, filters=filters)
        assert sum(map(sum, peaks.calls)) == len(expected)


def test_what_the_rollups_cannot_answer_reads_the_events(org, ledger):
    period = period_preset(org, "30d")
    for filters in (
        UsageFilters(properties=(("plan", "pro"), ("region", "eu"))),
        UsageFilters(properties=(("plan", "pro"),), cost_min=Decimal("0.01")),
        UsageFilters(properties=(("plan", "pro"),), trace_id="t"),
    ):
        rows = rollup_rows(organization=org, period=period, filters=filters)
        assert rows.qs.model.__name__ == "UsageEvent", filters


# Questions about customers under one property, and the table each reads.
CUSTOMER_QUESTIONS = [
    ({"property": "plan:pro"}, "customer", CustomerRollup),
    ({"property": "region:eu"}, "customer", CustomerRollup),
    ({"property": "plan:free", "customer_id": "a"}, None, CustomerRollup),
    ({"property": "plan:enterprise", "customer_id": "b"}, "model", PropertyCustomerDailyRollup),
    ({"property": "plan:pro", "model": "gpt-4o"}, "customer", PropertyCustomerDailyRollup),
    ({"property": "plan:free", "customer_id": ""}, "status", PropertyCustomerDailyRollup),
]


def _grouped(records, by: str | None) -> dict:
    """The oracle: calls and cost per value of `by` (None: one group)."""
    sums: dict = defaultdict(lambda: [0, Decimal(0)])
    for r in records:
        into = sums[getattr(r, {"customer": "customer_id"}.get(by, by)) if by else None]
        into[0] += 1
        into[1] += r.cost
    return {key: tuple(value) for key, value in sums.items()}


def test_customer_questions_under_a_property_read_rollups_and_equal_the_oracle(org, ledger):
    period = period_preset(org, "30d")
    for spec, by, table in CUSTOMER_QUESTIONS:
        print("filter:", spec, "by:", by)
        expected = [r for r in ledger if _matches(r, spec)]
        assert expected
        filters = _filters(spec)
        assert rollup_rows(organization=org, period=period, filters=filters, by=by).qs.model is (
            table
        )
        if table is PropertyCustomerDailyRollup:
            hours = rollup_rows(
                organization=org, period=period, filters=filters, by=by, hourly=True
            )
            assert hours.qs.model is PropertyCustomerHourlyRollup
        oracle = _grouped(expected, by)
        if by is None:
            totals = selectors.spend_totals(organization=org, period=period, filters=filters)
            assert {None: (totals.calls, totals.cost)} == oracle
        else:
            rows = selectors.spend_breakdown(
                organization=org, period=period, by=by, filters=filters
            )
            assert {row.key: (row.calls, row.cost) for row in rows} == oracle
        per_day = defaultdict(Decimal)
        for r in expected:
            per_day[timezone.localtime(r.created_at, period.zone).date()] += r.cost
        daily = selectors.spend_daily(organization=org, period=period, filters=filters)
        assert {d.key: d.cost for d in daily.days if d.calls} == dict(per_day)


def test_customer_rankings_under_a_property_in_every_order_equal_the_oracle(org, ledger):
    period = period_preset(org, "30d")
    filters = _filters({"property": "plan:pro"})
    oracle = _grouped([r for r in ledger if r.properties["plan"] == "pro"], "customer")
    for order, key in (
        ("cost", lambda c: (-oracle[c][1], c)),
        ("name", lambda c: c),
        ("calls", lambda c: (-oracle[c][0], c)),
    ):
        ranking = table_ranking(
            organization=org, period=period, by="customer", order=order, filters=filters, limit=2
        )
        assert ranking.count == len(oracle)
        assert [row.key for row in ranking.rows] == sorted(oracle, key=key)[:2], order
        assert [(row.calls, row.cost) for row in ranking.rows] == [
            oracle[row.key] for row in ranking.rows
        ]


def _event_sums(org) -> dict[tuple, tuple[int, Decimal]]:
    """The oracle of the hourly property table: plain Python over the events."""
    sums: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])
    from analytics.models import UsageEvent  # noqa: PLC0415 (the oracle reads rows, not code)

    for event in UsageEvent.objects.filter(organization=org):
        hour = event.created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        for name, value in event.properties.items():
            into = sums[(name, value, hour, event.model, event.status)]
            into[0] += 1
            into[1] += event.cost
    return {key: (calls, cost) for key, (calls, cost) in sums.items()}


def _hourly_sums(org) -> dict[tuple, tuple[int, Decimal]]:
    sums: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])
    for row in PropertyHourlyRollup.objects.filter(organization=org):
        into = sums[(row.name, row.value, row.hour, row.model, row.status)]
        into[0] += row.calls
        into[1] += row.cost
    return {key: (calls, cost) for key, (calls, cost) in sums.items()}


def test_the_fold_makes_hourly_and_daily_rows_equal_the_events(org, other_org, ledger):
    assert not PropertyRollupDelta.objects.exists()
    assert _hourly_sums(org) == _event_sums(org)
    zone = org_zone(org)
    daily: dict[tuple, int] = defaultdict(int)
    for row in PropertyHourlyRollup.objects.filter(organization=org):
        daily[(row.name, row.value, row.hour.astimezone(zone).date())] += row.calls
    stored: dict[tuple, int] = defaultdict(int)
    for row in PropertyDailyRollup.objects.filter(organization=org):
        stored[(row.name, row.value, row.day)] += row.calls
    assert stored == daily
    assert set(PropertyValue.objects.filter(organization=org).values_list("name", "value")) == {
        ("plan", "free"),
        ("plan", "pro"),
        ("plan", "enterprise"),
        ("region", "eu"),
    }


def _customer_sums(org) -> dict[tuple, tuple[int, Decimal]]:
    """CustomerRollup's property rows of `org`, per (dimension, value, span, start, customer)."""
    rows = CustomerRollup.objects.filter(organization=org, dimension__startswith="x-property-")
    return {(r.dimension, r.value, r.span, r.start, r.customer_id): (r.calls, r.cost) for r in rows}


def _customer_oracle(org) -> dict[tuple, tuple[int, Decimal]]:
    """The same from the events: each call in its local day, ISO week and month."""
    from analytics.intervals import spans_of  # noqa: PLC0415
    from analytics.models import UsageEvent  # noqa: PLC0415

    zone = org_zone(org)
    sums: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])
    for event in UsageEvent.objects.filter(organization=org):
        day = event.created_at.astimezone(zone).date()
        for name, value in event.properties.items():
            for span, start in spans_of(day):
                into = sums[(f"x-property-{name}", value, span, start, event.customer_id)]
                into[0] += 1
                into[1] += event.cost
    return {key: (calls, cost) for key, (calls, cost) in sums.items()}


def test_customer_property_rows_equal_the_events(org, other_org, ledger):
    assert _customer_sums(org) == _customer_oracle(org)
    zone = org_zone(org)
    calls = defaultdict(int)
    for r in ledger:
        for name, value in r.properties.items():
            day = r.created_at.astimezone(zone).date()
            calls[(name, value, r.customer_id, r.model, day)] += 1
    hourly, daily = defaultdict(int), defaultdict(int)
    for row in PropertyCustomerHourlyRollup.objects.filter(organization=org):
        day = row.hour.astimezone(zone).date()
        hourly[(row.name, row.value, row.customer_id, row.model, day)] += row.calls
    for row in PropertyCustomerDailyRollup.objects.filter(organization=org):
        daily[(row.name, row.value, row.customer_id, row.model, row.day)] += row.calls
    assert hourly == daily == calls


def test_a_second_organization_never_shows(org, other_org, ledger):
    period = period_preset(org, "30d")
    secret = _filters({"property": "secret:globex-only"})
    assert selectors.spend_totals(organization=org, period=period, filters=secret).calls == 0
    pro = selectors.spend_totals(
        organization=org, period=period, filters=_filters({"property": "plan:pro"})
    )
    assert pro.calls == sum(1 for r in ledger if r.properties["plan"] == "pro")
    for model in (
        PropertyHourlyRollup,
        PropertyDailyRollup,
        PropertyDailyModelRollup,
        PropertyCustomerHourlyRollup,
        PropertyValue,
        PropertyKey,
    ):
        assert not model.objects.filter(organization=org, name="secret").exists()
    assert not CustomerRollup.objects.filter(organization=org, value="globex-only").exists()
    by_customer = selectors.spend_breakdown(
        organization=org, period=period, by="customer", filters=secret
    )
    assert by_customer == []
    theirs = selectors.spend_totals(
        organization=other_org, period=period_preset(other_org, "30d"), filters=secret
    )
    assert (theirs.calls, theirs.cost) == (5, Decimal(25))


def test_a_key_with_too_many_values_is_capped_and_read_from_the_events(org, ingest):
    now = timezone.now()
    ingest(*(call(org, now, properties={"run": f"r{n}", "plan": "pro"}) for n in range(5)))
    assert PropertyKey.objects.get(organization=org, name="run").capped is False
    assert PropertyHourlyRollup.objects.filter(organization=org, name="run").count() == 5
    many = PROPERTY_VALUES_ROLLED + 1
    ingest(*(call(org, now, properties={"run": f"x{n}", "plan": "pro"}) for n in range(many)))
    key = PropertyKey.objects.get(organization=org, name="run")
    assert key.capped
    for model in (
        PropertyHourlyRollup,
        PropertyDailyRollup,
        PropertyDailyModelRollup,
        PropertyCustomerHourlyRollup,
        PropertyCustomerDailyRollup,
    ):
        assert not model.objects.filter(organization=org, name="run").exists()
    assert not PropertyValue.objects.filter(organization=org, name="run").exists()
    assert not CustomerRollup.objects.filter(organization=org, dimension="x-property-run").exists()
    assert CustomerRollup.objects.filter(organization=org, dimension="x-property-plan").exists()
    # Later calls with that key add nothing to the rollups; the plan key still rolls up.
    ingest(call(org, now, properties={"run": "r1", "plan": "pro"}))
    assert not PropertyHourlyRollup.objects.filter(organization=org, name="run").exists()
    period = period_preset(org, "7d")
    run = _filters({"property": "run:r1"})
    assert rollup_rows(organization=org, period=period, filters=run).qs.model.__name__ == (
        "UsageEvent"
    )
    assert selectors.spend_totals(organization=org, period=period, filters=run).calls == 2
    plan = _filters({"property": "plan:pro"})
    assert rollup_rows(organization=org, period=period, filters=plan).qs.model is (
        PropertyDailyModelRollup
    )
    assert selectors.spend_totals(organization=org, period=period, filters=plan).calls == (
        5 + many + 1
    )


def test_a_value_too_long_to_roll_up_caps_its_key(org, ingest):
    now = timezone.now()
    ingest(call(org, now, properties={"note": "short"}))
    ingest(call(org, now, properties={"note": "x" * (PROPERTY_VALUE_ROLLED + 5)}))
    assert PropertyKey.objects.get(organization=org, name="note").capped
    assert not PropertyHourlyRollup.objects.filter(organization=org, name="note").exists()
    period = period_preset(org, "7d")
    long = _filters({"property": f"note:{'x' * (PROPERTY_VALUE_ROLLED + 5)}"})
    assert selectors.spend_totals(organization=org, period=period, filters=long).calls == 1


def test_a_zone_rebuild_rekeys_the_daily_property_rows(org, ingest):
    # 23:30 UTC is the next day in Tokyo (UTC+9).
    at = datetime(2026, 11, 2, 23, 30, tzinfo=UTC)
    ingest(*(call(org, at + timedelta(minutes=n), properties={"plan": "pro"}) for n in range(3)))
    days = set(PropertyDailyRollup.objects.filter(organization=org).values_list("day", flat=True))
    assert days == {at.date()}
    org.timezone = "Asia/Tokyo"
    org.save()
    daily_rollups_rebuild(org.pk)
    org.refresh_from_db()
    rows = PropertyDailyRollup.objects.filter(organization=org)
    assert {(row.day, row.calls) for row in rows} == {(at.date() + timedelta(days=1), 3)}
    period = Period(at.date() + timedelta(days=1), at.date() + timedelta(days=1), org_zone(org))
    filters = _filters({"property": "plan:pro"})
    assert rollup_rows(organization=org, period=period, filters=filters).qs.model is (
        PropertyDailyModelRollup
    )
    assert selectors.spend_totals(organization=org, period=period, filters=filters).calls == 3
    assert _daily_model_rows(org) == _daily_model_oracle(org)
    assert _customer_sums(org) == _customer_oracle(org)
    rows = PropertyCustomerDailyRollup.objects.filter(organization=org)
    assert {(row.day, row.calls) for row in rows} == {(at.date() + timedelta(days=1), 3)}


def test_the_migration_backfill_through_the_fold_rebuilds_the_same_rows(org, other_org, ledger):
    before = _hourly_sums(org)
    daily_before = sorted(
        PropertyDailyRollup.objects.filter(organization=org).values_list("name", "value", "day")
    )
    for model in (PropertyHourlyRollup, PropertyDailyRollup, PropertyKey, PropertyValue):
        model.objects.all().delete()
    migration = importlib.import_module("analytics.migrations.0019_property_rollups")
    migration.backfill(None, SimpleNamespace(connection=connection))
    assert PropertyRollupDelta.objects.exists()
    rollups_fold_until_done()
    assert _hourly_sums(org) == before == _event_sums(org)
    daily_after = sorted(
        PropertyDailyRollup.objects.filter(organization=org).values_list("name", "value", "day")
    )
    assert daily_after == daily_before


def test_the_customer_backfill_and_a_rebuild_give_the_same_rows(org, other_org, ledger):
    before = _customer_sums(org)
    assert before == _customer_oracle(org)
    PropertyCustomerHourlyRollup.objects.all().delete()
    CustomerRollup.objects.filter(dimension__startswith="x-property-").delete()
    migration = importlib.import_module("analytics.migrations.0021_property_customer_rollups")
    migration.backfill(None, SimpleNamespace(connection=connection))
    org.refresh_from_db()
    assert org.rollup_timezone == ""  # the daily tables are rebuilt, property rows included
    period = period_preset(org, "30d")
    filters = _filters({"property": "plan:pro"})
    assert rollup_rows(
        organization=org, period=period, filters=filters, by="customer"
    ).qs.model is (PropertyCustomerHourlyRollup)
    daily_rollups_rebuild(org.pk)
    assert _customer_sums(org) == before


def test_latency_percentiles_under_a_common_property_equal_the_oracle(org, ledger):
    """A property on a third of the calls is sampled by walking the latest
    calls (headline.WALK_SHARE): the same calls as the containment filter."""
    period = period_preset(org, "30d")
    for spec in ({"property": "plan:pro"}, {"property": "region:eu", "model": "gpt-4o"}):
        latencies = sorted(r.latency_ms for r in ledger if _matches(r, spec))
        headline = overview_headline(organization=org, period=period, filters=_filters(spec))
        assert (headline.latency.p50_ms, headline.latency.p95_ms) == (
            nearest_rank(latencies, 50),
            nearest_rank(latencies, 95),
        ), spec
        assert headline.latency.sampled == len(latencies)


def test_the_daily_customer_backfill_gives_the_folded_rows(org, other_org, ledger):
    def stored():
        names = [f.attname for f in PropertyCustomerDailyRollup._meta.concrete_fields][1:]
        return sorted(PropertyCustomerDailyRollup.objects.values_list(*names), key=repr)

    before = stored()
    assert before
    _backfill_again(PropertyCustomerDailyRollup, "0023_property_customer_daily", org, other_org)
    assert stored() == before


def _backfill_again(table, migration: str, org, *others) -> None:
    """Empty `table` and run `migration`'s backfill into it. SQLite: the
    backfill marks the organizations for a daily rebuild, done here."""
    table.objects.all().delete()
    module = importlib.import_module(f"analytics.migrations.{migration}")
    module.backfill(None, SimpleNamespace(connection=connection))
    if connection.vendor != "postgresql":
        org.refresh_from_db()
        assert org.rollup_timezone == ""
        for each in (org, *others):
            daily_rollups_rebuild(each.pk)


# --- PropertyDailyModelRollup: the daily rows without environment, key and status ---

_MODEL_COUNTERS = (
    "calls",
    "unpriced_calls",
    "error_calls",
    "input_tokens",
    "output_tokens",
    "cost",
    "latency_ms_sum",
)


def _daily_model_rows(org) -> dict[tuple, tuple]:
    rows = PropertyDailyModelRollup.objects.filter(organization=org)
    keys = ("name", "value", "day", "provider", "model", "feature")
    return {
        tuple(row[k] for k in keys): tuple(row[c] for c in _MODEL_COUNTERS)
        for row in rows.values(*keys, *_MODEL_COUNTERS)
    }


def _daily_model_oracle(org) -> dict[tuple, tuple]:
    """The oracle: a plain GROUP BY over the events, each call under each of
    its properties in the local day its hour starts on (PostgreSQL; Python
    over the events elsewhere)."""
    from analytics.models import UsageEvent  # noqa: PLC0415 (the oracle reads rows, not code)

    zone = org_zone(org)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT p.key, p.value, (date_trunc('hour', e.created_at) AT TIME ZONE %s)::date, "  # noqa: S608
                "e.provider, e.model, e.feature, COUNT(*), "
                "SUM(CASE WHEN e.priced THEN 0 ELSE 1 END), "
                "SUM(CASE WHEN e.status <> 'success' THEN 1 ELSE 0 END), "
                "SUM(e.input_tokens), SUM(e.output_tokens), SUM(e.cost), SUM(e.latency_ms) "
                f"FROM {UsageEvent._meta.db_table} e, jsonb_each_text(e.properties) p "
                "WHERE e.organization_id = %s GROUP BY 1, 2, 3, 4, 5, 6",
                [zone.key, org.pk],
            )
            return {tuple(row[:6]): tuple(row[6:]) for row in cursor.fetchall()}
    sums: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, 0, Decimal(0), 0])
    for e in UsageEvent.objects.filter(organization=org):
        hour = e.created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        for name, value in e.properties.items():
            key = (name, value, hour.astimezone(zone).date(), e.provider, e.model, e.feature)
            add: list = [1, 0 if e.priced else 1, int(e.status != "success"), e.input_tokens]
            add += [e.output_tokens, e.cost, e.latency_ms]
            sums[key] = [a + b for a, b in zip(sums[key], add, strict=True)]
    return {key: tuple(value) for key, value in sums.items()}


def test_the_daily_model_cut_equals_a_group_by_over_the_events_folded_once(org, other_org, ledger):
    assert _daily_model_rows(org) == _daily_model_oracle(org)
    assert _daily_model_rows(other_org) == _daily_model_oracle(other_org)
    # More calls, their deltas pending until one fold; a second fold adds nothing.
    now = timezone.now()
    more = [
        call(org, now - timedelta(hours=n), status=STATUSES[n % 3], properties={"plan": "pro"})
        for n in range(6)
    ]
    usage_record_batch(more)
    usage_record_batch([call(org, now, properties={"plan": "new"})])
    assert PropertyRollupDelta.objects.filter(organization=org).exists()
    assert _daily_model_rows(org) != _daily_model_oracle(org)
    rollups_fold_until_done()
    rollups_fold_until_done()
    assert _daily_model_rows(org) == _daily_model_oracle(org)


def test_the_overview_under_a_property_reads_the_cut_and_equals_the_oracle(org, ledger):
    period = period_preset(org, "30d")
    filters = _filters({"property": "plan:pro"})
    expected = [r for r in ledger if r.properties["plan"] == "pro"]
    summary = selectors.spend_summary(organization=org, period=period, filters=filters)
    assert (summary.current.calls, summary.current.cost) == (
        len(expected),
        sum(r.cost for r in expected),
    )
    assert summary.current.error_calls == sum(1 for r in expected if r.status != "success")
    features = selectors.spend_breakdown(
        organization=org, period=period, by="feature", filters=filters
    )
    assert {row.key: row.calls for row in features} == dict(_calls_by(expected, "feature"))


def _calls_by(records, name: str) -> dict:
    out: dict = defaultdict(int)
    for r in records:
        out[getattr(r, name)] += 1
    return out


def test_the_daily_model_backfill_gives_the_folded_rows(org, other_org, ledger):
    before = {each.pk: _daily_model_rows(each) for each in (org, other_org)}
    assert before[org.pk]
    _backfill_again(PropertyDailyModelRollup, "0025_property_daily_model", org, other_org)
    assert {each.pk: _daily_model_rows(each) for each in (org, other_org)} == before
