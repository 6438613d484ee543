"""Re-pricing the ledger: unpriced calls are recorded, counted, and priced
once a price exists; rollups always equal the sums of their events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum

from analytics.fold import rollups_fold_until_done
from analytics.models import (
    CustomerRollup,
    HourlyCoarseRollup,
    HourlyRollup,
    PropertyCustomerHourlyRollup,
    PropertyDailyModelRollup,
    PropertyDailyRollup,
    PropertyHourlyRollup,
    Status,
    UsageEvent,
)
from analytics.records import UsageRecord
from analytics.repricing import usage_reprice
from analytics.rollups import HOURLY_COARSE
from analytics.services import usage_record_batch
from pricing import engine
from pricing.selectors import unpriced_model_summary
from pricing.services import price_override_create
from pricing.usage import Usage
from proxy.costing import call_cost

pytestmark = pytest.mark.django_db
T0 = datetime(2025, 3, 10, 10, 15, tzinfo=UTC)


def record(org, n, *, model="acme-llm", at=T0, **fields) -> UsageRecord:
    """A call priced the way the proxy prices it at ingest (proxy.costing)."""
    usage = fields.pop("usage", Usage(input_tokens=1_000_000, output_tokens=100_000))
    status = fields.pop("status", Status.SUCCESS)
    cost = call_cost(
        organization_id=org.pk,
        provider="openai",
        model=model,
        response_model=fields.get("response_model", ""),
        usage=usage,
        at=at,
        billable=True,
        succeeded=status == Status.SUCCESS,
    )
    return UsageRecord(
        request_id=f"req_{org.pk}_{n}",
        organization_id=org.pk,
        api_key_id=None,
        created_at=at,
        provider="openai",
        endpoint="/v1/chat/completions",
        status=status,
        model=model,
        usage=usage,
        cost=cost,
        **fields,
    )


def assert_rollups_equal_events(org):
    for rollup in HourlyRollup.objects.filter(organization=org):
        events = UsageEvent.objects.filter(
            organization=org,
            created_at__gte=rollup.hour,
            created_at__lt=rollup.hour + timedelta(hours=1),
            model=rollup.model,
        )
        costs = [e.cost for e in events]
        assert rollup.cost == sum(costs, Decimal(0))
        assert rollup.unpriced_calls == events.filter(priced=False).count()
    # The customer-less rollup equals the fine one summed over customers, once folded.
    rollups_fold_until_done()
    coarse_rows = HourlyCoarseRollup.objects.filter(organization=org)
    assert coarse_rows.exists()
    for coarse in coarse_rows:
        fine = HourlyRollup.objects.filter(
            **{name: getattr(coarse, name) for name in HOURLY_COARSE.key}
        )
        assert coarse.cost == sum((f.cost for f in fine), Decimal(0))
        assert coarse.unpriced_calls == sum(f.unpriced_calls for f in fine)


def test_unknown_model_is_recorded_unpriced_then_repriced(org, price_row):
    engine.ensure_fresh(force=True)
    usage_record_batch([record(org, 1), record(org, 2), record(org, 3, model="gpt-4o")])
    event = UsageEvent.objects.get(request_id=f"req_{org.pk}_1")
    assert (event.priced, event.cost) == (False, Decimal(0))
    summary = unpriced_model_summary(organization=org)
    assert (summary.calls, [m.model for m in summary.models]) == (3, ["acme-llm", "gpt-4o"])

    price_row("acme-llm", input="1", output="2")  # staff add a price: $1 / $2
    changed = usage_reprice(model="acme-llm")

    assert changed == 2
    event.refresh_from_db()
    # 1M × $1 + 100k × $2 = $1.20
    assert (event.priced, event.cost) == (True, Decimal("1.2"))
    assert unpriced_model_summary(organization=org).calls == 1  # gpt-4o still unpriced
    assert_rollups_equal_events(org)
    rollup = HourlyRollup.objects.get(organization=org, model="acme-llm")
    assert (rollup.cost, rollup.unpriced_calls, rollup.calls) == (Decimal("2.4"), 0, 2)


def test_a_price_change_mid_month_keeps_each_side_on_its_own_price(org, price_row):
    price_row("acme-llm", input="1", output="2", effective_from=datetime(2025, 3, 1, tzinfo=UTC))
    engine.ensure_fresh(force=True)
    early, late = T0, T0 + timedelta(days=10)  # 10 March, 20 March
    usage_record_batch([record(org, 1, at=early), record(org, 2, at=late)])
    price_row("acme-llm", input="3", output="4", effective_from=datetime(2025, 3, 15, tzinfo=UTC))

    assert usage_reprice(include_priced=True) == 1  # only the late call changes

    costs = dict(UsageEvent.objects.values_list("created_at", "cost"))
    # early: 1M×1 + 100k×2 = $1.20; late: 1M×3 + 100k×4 = $3.40
    assert (costs[early], costs[late]) == (Decimal("1.2"), Decimal("3.4"))
    assert_rollups_equal_events(org)


def test_reprice_applies_a_corrected_price_and_fixes_mixed_buckets(org, price_row):
    row = price_row("acme-llm", input="1", output="2")
    engine.ensure_fresh(force=True)
    usage_record_batch([record(org, 1), record(org, 2, model="acme-llm-unknown")])
    row.input = Decimal("0.5")
    row.save()

    assert usage_reprice(model="acme-llm") == 0  # priced events need include_priced
    assert usage_reprice(model="acme-llm", include_priced=True) == 1

    assert UsageEvent.objects.get(model="acme-llm").cost == Decimal("0.7")  # 0.5 + 0.2
    assert_rollups_equal_events(org)


def test_reprice_is_scoped_by_organization_and_since(org, other_org, price_row):
    engine.ensure_fresh(force=True)
    usage_record_batch(
        [record(org, 1), record(org, 2, at=T0 - timedelta(days=30)), record(other_org, 3)]
    )
    price_row("acme-llm", input="1", output="2")

    assert usage_reprice(organization=org, since=T0 - timedelta(days=1)) == 1
    assert set(UsageEvent.objects.filter(priced=False).values_list("request_id", flat=True)) == {
        f"req_{org.pk}_2",
        f"req_{other_org.pk}_3",
    }
    assert_rollups_equal_events(org)
    assert_rollups_equal_events(other_org)


def test_an_org_override_reprices_that_orgs_calls_only(org, other_org, owner):
    engine.ensure_fresh(force=True)
    usage_record_batch([record(org, 1, model="ft:acme"), record(other_org, 2, model="ft:acme")])
    price_override_create(
        organization=org,
        created_by=owner,
        provider="",
        model="ft:acme",
        prices={"input": Decimal("10"), "output": Decimal("0")},
    )

    assert usage_reprice() == 1
    assert UsageEvent.objects.get(organization=org).cost == Decimal("10")
    assert UsageEvent.objects.get(organization=other_org).priced is False


def test_the_answered_model_prices_when_the_asked_one_is_an_alias(org, price_row):
    engine.ensure_fresh(force=True)
    usage_record_batch([record(org, 1, model="acme-latest", response_model="acme-llm-2025")])
    price_row("acme-llm-2025", input="1", output="0")
    # No price for either name at ingest; now the answered one has a price.
    assert usage_reprice() == 1
    assert UsageEvent.objects.get().cost == Decimal("1")


def test_reprice_all_with_no_price_change_changes_nothing(org, price_row):
    """Ingest (proxy.costing) and re-pricing decide the model by one rule
    (pricing.engine.cost_for_call): the asked model first, then the answered."""
    price_row("acme-llm", input="1", output="2")
    price_row("acme-llm-2025", input="5", output="10")
    engine.ensure_fresh(force=True)
    records = [
        # Both names priced: the asked one wins, $1.20 (not $6.00).
        record(org, 1, model="acme-llm", response_model="acme-llm-2025"),
        # The asked alias has no price: the answered one, $6.00.
        record(org, 2, model="acme-latest", response_model="acme-llm-2025"),
        # A failed call that counted no tokens is free whatever its model.
        record(org, 3, model="nobody-prices-that", status=Status.UPSTREAM_ERROR, usage=Usage()),
        # Neither name priced: unpriced.
        record(org, 4, model="nobody-prices-this", response_model="nor-this"),
    ]
    assert [r.cost for r in records] == [Decimal("1.2"), Decimal("6"), Decimal(0), None]
    usage_record_batch(records)
    before = list(UsageEvent.objects.order_by("pk").values_list("cost", "priced"))

    assert usage_reprice(include_priced=True) == 0

    assert list(UsageEvent.objects.order_by("pk").values_list("cost", "priced")) == before
    assert_rollups_equal_events(org)


def test_reprice_command(org, price_row, capsys):
    engine.ensure_fresh(force=True)
    usage_record_batch([record(org, 1), record(org, 2, at=T0 - timedelta(days=30))])
    price_row("acme-llm", input="1", output="2")

    call_command("reprice", "--model", "acme-llm", "--since", "2025-03-01", "--org", org.slug)

    assert "Re-priced 1 events." in capsys.readouterr().out
    assert UsageEvent.objects.filter(priced=True).count() == 1
    total = HourlyRollup.objects.filter(organization=org).aggregate(s=Sum("unpriced_calls"))["s"]
    assert total == 1


def test_repricing_keeps_the_property_rollups_equal_to_the_events(org, price_row):
    """Each re-priced call moves its properties' rollup rows by its change
    (through the property delta log and the fold), never twice."""
    engine.ensure_fresh(force=True)
    usage_record_batch(
        [
            record(org, 1, properties={"plan": "pro"}),
            record(org, 2, properties={"plan": "pro", "region": "eu"}),
            record(org, 3, properties={"plan": "free"}),
            record(org, 4, model="gpt-4o", properties={"plan": "pro"}),
        ]
    )
    rollups_fold_until_done()
    price_row("acme-llm", input="1", output="2")
    assert usage_reprice(model="acme-llm") == 3
    assert usage_reprice(model="acme-llm", include_priced=True) == 0  # nothing moves twice
    rollups_fold_until_done()
    for name, value in (("plan", "pro"), ("plan", "free"), ("region", "eu")):
        events = UsageEvent.objects.filter(organization=org, **{f"properties__{name}": value})
        tables = {
            table: table.objects.filter(organization=org, name=name, value=value)
            for table in (
                PropertyHourlyRollup,
                PropertyDailyRollup,
                PropertyDailyModelRollup,
                PropertyCustomerHourlyRollup,
            )
        }
        # The customers' rows of the pair, one interval kind (each call is in one day).
        tables[CustomerRollup] = CustomerRollup.objects.filter(
            organization=org, dimension=f"x-property-{name}", value=value, span="d"
        )
        for table, rows in tables.items():
            assert rows.aggregate(c=Sum("cost"))["c"] == sum(e.cost for e in events), (name, table)
            assert rows.aggregate(n=Sum("unpriced_calls"))["n"] == sum(
                0 if e.priced else 1 for e in events
            )
    pro = PropertyHourlyRollup.objects.filter(organization=org, name="plan", value="pro")
    assert (
        pro.aggregate(c=Sum("cost"))["c"]
        == Decimal("2.4") + UsageEvent.objects.get(request_id=f"req_{org.pk}_4").cost
    )
