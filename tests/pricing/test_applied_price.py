"""Which price a call is charged at, for people: list or override, the tier, the rates
(expected rates are genai-prices' published gpt-4o price and the override below)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django.utils import timezone

from analytics.services import usage_record_batch
from pricing import engine
from tests.analytics.conftest import call
from tests.pricing.conftest import snapshot_of

AT = datetime(2026, 1, 15, tzinfo=UTC)
OVERRIDE = {
    "provider": "",
    "model": "gpt-4o",
    "effective_from": datetime(2000, 1, 1, tzinfo=UTC),
    "input": Decimal("2"),
    "output": Decimal("8"),
}


def test_override_or_list_price(bundled_data, org, other_org):
    engine.snapshot_set(
        snapshot_of(bundled_data, overrides=[{**OVERRIDE, "organization_id": org.pk}])
    )
    ours = engine.applied_price(
        organization=org, provider="openai", model="gpt-4o", input_tokens=100, at=AT
    )
    assert ours is not None and ours.override and ours.tier_above is None
    assert dict(ours.rates)["input"] == 2 and dict(ours.rates)["output"] == 8
    theirs = engine.applied_price(
        organization=other_org, provider="openai", model="gpt-4o", input_tokens=100, at=AT
    )
    assert theirs is not None and not theirs.override
    assert dict(theirs.rates)["input"] == Decimal("2.5") and dict(theirs.rates)["output"] == 10
    assert (
        engine.applied_price(
            organization=org, provider="openai", model="no-such-model-x", input_tokens=1, at=AT
        )
        is None
    )


def test_request_detail_names_the_price_applied(bundled, owner_client, org):
    record = call(org, timezone.now(), model="gpt-4o", cost="0.0010000000")
    usage_record_batch([record])
    page = owner_client.get(f"/requests/{record.request_id}/").content.decode()
    assert "List price" in page
    rows = page[page.index('id="price-rows"') :]
    assert "$2.50" in rows and "$10.00" in rows  # USD per million tokens, input / output

    unknown = call(org, timezone.now(), model="no-such-model-x", cost=None)
    usage_record_batch([unknown])
    page = owner_client.get(f"/requests/{unknown.request_id}/").content.decode()
    assert "No price matches this model yet" in page
