"""seed_demo_usage --fast (analytics.demo_copy): the same events and every rollup
the ledger path builds for the same seed, written by COPY and SQL (PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import ApiKey, Organization
from analytics.demo import DemoGenerator, demo_usage_write
from analytics.demo_copy import TABLES as WRITTEN
from analytics.demo_copy import demo_usage_copy
from analytics.models import (
    CustomerRollup,
    DailyCoarseRollup,
    DailyModelRollup,
    HourlyCoarseRollup,
    HourlyRollup,
    PropertyCustomerHourlyRollup,
    PropertyDailyModelRollup,
    PropertyDailyRollup,
    PropertyHourlyRollup,
    PropertyRollupDelta,
    PropertyValue,
    RollupDelta,
    UsageEvent,
    UsageShapeRollup,
)

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="--fast COPYs into PostgreSQL (CI runs it)"
)
# Every table the ledger path fills for an organization, the delta log included
# (empty once folded).
TABLES = (
    UsageEvent,
    HourlyRollup,
    RollupDelta,
    HourlyCoarseRollup,
    DailyCoarseRollup,
    DailyModelRollup,
    CustomerRollup,
    UsageShapeRollup,
    PropertyRollupDelta,
    PropertyHourlyRollup,
    PropertyDailyModelRollup,
    PropertyDailyRollup,
    PropertyCustomerHourlyRollup,
    PropertyValue,
)
END = datetime(2026, 11, 4, 15, 30, tzinfo=UTC)


def contents(org) -> dict[str, list[tuple]]:
    """Each table's rows of `org`, every column but the surrogate id, sorted."""
    out = {}
    for model in TABLES:
        names = [f.attname for f in model._meta.concrete_fields if not f.primary_key]
        rows = model.objects.filter(organization=org).values_list(*names)
        out[model.__name__] = sorted(rows, key=repr)
    return out


def schema() -> set[tuple]:
    """The indexes and constraints of the tables the fast load writes."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexdef FROM pg_indexes WHERE tablename = ANY(%s) UNION ALL "
            "SELECT conrelid::regclass::text, conname || pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE conrelid::regclass::text = ANY(%s)",
            [list(WRITTEN), list(WRITTEN)],
        )
        return set(cursor.fetchall())


def generator(org, *, events: int = 4000) -> DemoGenerator:
    keys = {
        key.name.removeprefix("demo "): key.pk for key in ApiKey.objects.filter(organization=org)
    }
    return DemoGenerator(
        organization_id=org.pk, key_ids=keys, days=9, events=events, seed=5, end=END
    )


@pytest.fixture
def demo_org(db) -> Organization:
    """An organization with the command's demo keys (one per environment)."""
    call_command("seed_demo_usage", org="Copy Co", events=0, stdout=StringIO())
    return Organization.objects.get(name="Copy Co")


def forget(org) -> None:
    for model in TABLES:
        model.objects.filter(organization=org).delete()


def test_fast_seed_builds_the_events_and_every_rollup_the_ledger_path_builds(demo_org):
    new, _ = demo_usage_write(generator(demo_org), batch_size=700)
    assert new == 4000
    ledger = contents(demo_org)
    forget(demo_org)
    # Empty tables: the path that drops their indexes and builds them after.
    assert not any(model.objects.exists() for model in TABLES)
    indexed = schema()

    assert demo_usage_copy(generator(demo_org))[0] == 4000
    fast = contents(demo_org)
    for name, rows in ledger.items():
        assert fast[name] == rows, name
    # The seed reaches what the comparison should cover.
    assert len(fast["UsageShapeRollup"]) > 1000 and len(fast["CustomerRollup"]) > 1000
    assert {row[6] for row in fast["UsageShapeRollup"]} >= {0, 1}  # input bands
    assert not fast["RollupDelta"] and not fast["PropertyRollupDelta"]
    assert len(fast["PropertyHourlyRollup"]) > 100  # every customer's calls carry a plan
    assert schema() == indexed
    assert {"ue_properties", "uniq_rollup_bucket", "cr_span_cost"} <= {
        definition.split()[3 if definition.startswith("CREATE UNIQUE") else 2]
        for _, definition in indexed
        if definition.startswith("CREATE")
    }


def test_fast_seed_into_a_table_with_other_events_and_of_a_seeded_organization(demo_org):
    other = Organization.objects.create(name="Other", slug="other")
    call_command("seed_demo_usage", org="other", events=300, days=2, stdout=StringIO())
    out = StringIO()
    call_command(
        "seed_demo_usage", org="Copy Co", events=2000, days=3, seed=9, fast=True, stdout=out
    )
    assert "2,000 new events" in out.getvalue()
    hourly = HourlyRollup.objects.filter(organization=demo_org)
    assert sum(hourly.values_list("calls", flat=True)) == 2000
    assert UsageEvent.objects.filter(organization=other).count() == 300

    with pytest.raises(CommandError, match="organization with no events"):
        call_command("seed_demo_usage", org="Copy Co", events=10, fast=True, stdout=out)
    assert UsageEvent.objects.filter(organization=demo_org).count() == 2000
