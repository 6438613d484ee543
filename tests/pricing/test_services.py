"""Organization overrides and the price version that makes every process reload."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.cache import cache

from pricing import engine
from pricing.models import PriceOverride, PricingVersion
from pricing.selectors import VERSION_CACHE_KEY, pricing_version_read
from pricing.services import (
    PricingError,
    price_override_create,
    price_override_delete,
    price_override_update,
)
from pricing.usage import Usage

pytestmark = pytest.mark.django_db
PRICES = {"input": Decimal("2"), "output": Decimal("8")}


def gpt_4o_cost(organization):
    return engine.cost_for_usage(
        organization=organization,
        provider="openai",
        model="gpt-4o",
        usage=Usage(input_tokens=1_000_000),
        at=datetime(2025, 9, 1, tzinfo=UTC),
    )


def create(org, owner, **fields):
    fields.setdefault("provider", "")
    fields.setdefault("model", "gpt-4o")
    fields.setdefault("prices", PRICES)
    return price_override_create(organization=org, created_by=owner, **fields)


def test_override_wins_over_the_global_price_for_its_org_only(org, other_org, owner, price_row):
    price_row("gpt-4o", input="2.5", output="10")
    create(org, owner)
    engine.ensure_fresh(force=True)
    assert gpt_4o_cost(org) == Decimal("2")
    assert gpt_4o_cost(other_org) == Decimal("2.5")


def test_provider_specific_override_beats_any_provider(org, owner):
    create(org, owner, prices={"input": Decimal("1")})
    create(org, owner, provider="openai", prices={"input": Decimal("3")})
    engine.ensure_fresh(force=True)
    assert gpt_4o_cost(org) == Decimal("3")


def test_an_override_starting_later_leaves_earlier_calls_on_the_list_price(org, owner, price_row):
    price_row("gpt-4o", input="2.5", output="10")
    create(org, owner, effective_from=datetime(2025, 10, 1, tzinfo=UTC))
    engine.ensure_fresh(force=True)
    assert gpt_4o_cost(org) == Decimal("2.5")  # the call was on 1 September


def test_override_rules(org, other_org, owner):
    with pytest.raises(PricingError, match="at least an input or an output"):
        create(org, owner, prices={"cache_read": Decimal("1")})
    with pytest.raises(PricingError, match="Name the model"):
        create(org, owner, model="  ")
    with pytest.raises(PricingError, match="negative"):
        create(org, owner, prices={"input": Decimal("-1")})
    create(org, owner)
    with pytest.raises(PricingError, match="already have a price for GPT-4o"):
        create(org, owner, model="GPT-4o")
    create(other_org, owner)  # another organization may price the same model


def test_update_and_delete_stay_inside_the_organization(org, other_org, owner):
    override = create(org, owner)
    updated = price_override_update(
        organization=org,
        override=override,
        provider="openai",
        model="gpt-4o",
        prices={"input": Decimal("1.5"), "output": None},
        notes="2025 contract",
    )
    assert (updated.input, updated.output, updated.provider) == (Decimal("1.5"), None, "openai")
    with pytest.raises(PricingError):
        price_override_update(
            organization=other_org, override=override, provider="", model="x", prices=PRICES
        )
    with pytest.raises(PricingError):
        price_override_delete(organization=other_org, override=override)
    price_override_delete(organization=org, override=override)
    assert not PriceOverride.objects.exists()


def test_a_write_bumps_the_version_and_other_processes_reload(
    org, owner, django_capture_on_commit_callbacks
):
    engine.ensure_fresh(force=True)
    loaded = engine._state.snapshot
    before = pricing_version_read()
    with django_capture_on_commit_callbacks(execute=True):
        create(org, owner)
    assert cache.get(VERSION_CACHE_KEY) == before + 1 == PricingVersion.objects.get().version
    assert engine.ensure_fresh() is True  # the write marked this process stale
    assert engine._state.snapshot is not loaded
    assert gpt_4o_cost(org) == Decimal("2")
    assert engine.ensure_fresh() is False  # not due again for a few seconds


def test_without_the_shared_cache_the_version_comes_from_the_database():
    PricingVersion.objects.filter(pk=1).update(version=41)
    cache.delete(VERSION_CACHE_KEY)
    assert pricing_version_read() == 41
    assert cache.get(VERSION_CACHE_KEY) == 41


def test_a_failing_refresh_keeps_the_current_prices(monkeypatch, price_row):
    price_row("acme-llm", input="1")
    engine.ensure_fresh(force=True)
    engine.snapshot_mark_stale()

    def down():
        raise RuntimeError("database unreachable")

    monkeypatch.setattr("pricing.selectors.pricing_version_read", down)
    assert engine.ensure_fresh() is False
    assert engine.model_resolve(provider="openai", model="acme-llm") == ("openai", "acme-llm")
