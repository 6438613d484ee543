"""sync_prices: genai-prices' bundled data flattened into our tables."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command

from pricing import engine
from pricing.models import ModelPrice, PriceSource, PricingVersion, Provider
from pricing.selectors import provider_upstreams_all
from pricing.services import model_price_admin_save, prices_sync
from pricing.usage import Usage
from tests.pricing.conftest import AT

pytestmark = pytest.mark.django_db


def gpt_4o() -> ModelPrice:
    return ModelPrice.objects.get(provider__slug="openai", model_id="gpt-4o")


def test_sync_is_idempotent():
    first = prices_sync()
    assert len(first.added) > 2_000
    assert {"openai", "anthropic", "gemini"}.isdisjoint(first.providers_added)  # seeded
    assert "groq" in first.providers_added
    version = PricingVersion.objects.get(pk=1).version
    rows = ModelPrice.objects.count()

    second = prices_sync()

    assert (second.added, second.changed, second.providers_added) == ([], [], [])
    assert second.unchanged == rows == len(first.added)
    assert ModelPrice.objects.count() == rows
    assert PricingVersion.objects.get(pk=1).version == version  # nothing to reload


def test_flattened_rows_keep_history_tiers_aliases_and_cache_prices():
    prices_sync()
    assert gpt_4o().cache_read == Decimal("1.25")
    assert gpt_4o().source == PriceSource.GENAI_PRICES
    assert {"equals": "gpt-4o-2024-08-06"} in gpt_4o().match_rules["or"]
    o3 = ModelPrice.objects.filter(provider__slug="openai", model_id="o3").order_by(
        "effective_from"
    )
    assert [(r.effective_from.date().isoformat(), r.input) for r in o3] == [
        ("2000-01-01", Decimal("10")),
        ("2025-06-10", Decimal("2")),
    ]
    sonnet = ModelPrice.objects.get(provider__slug="anthropic", model_id="claude-sonnet-4-5")
    assert sonnet.cache_write_1h == Decimal("6")
    assert sonnet.tiers == [
        {
            "above": 200000,
            "input": "6",
            "output": "22.5",
            "cache_read": "0.6",
            "cache_write": "7.5",
            "cache_write_1h": "12",
        }
    ]
    # Google's models live under our "gemini" provider.
    assert ModelPrice.objects.filter(provider__slug="gemini", model_id="gemini-2.5-pro").exists()


def test_staff_edits_survive_a_sync():
    prices_sync()
    row = gpt_4o()
    row.input = Decimal("2.00")
    model_price_admin_save(price=row)

    report = prices_sync()

    row.refresh_from_db()
    assert (row.source, row.input) == (PriceSource.ADMIN, Decimal("2.00"))
    assert "openai/gpt-4o" in report.skipped_admin
    assert report.changed == []


def test_sync_repairs_rows_it_owns_when_the_data_differs():
    prices_sync()
    ModelPrice.objects.filter(pk=gpt_4o().pk).update(input=Decimal("99"))

    report = prices_sync()

    assert report.changed == ["openai/gpt-4o"]
    assert gpt_4o().input == Decimal("2.5")


def test_sync_never_touches_an_existing_provider():
    Provider.objects.create(slug="groq", name="Our Groq", base_url="https://groq.internal")
    prices_sync()
    groq = Provider.objects.get(slug="groq")
    assert (groq.name, groq.base_url) == ("Our Groq", "https://groq.internal")


def test_models_priced_in_other_units_are_skipped_and_named():
    report = prices_sync()
    assert "openai/whisper-1: not priced per token" in report.skipped_unpriced
    assert not ModelPrice.objects.filter(model_id="whisper-1").exists()


def test_prices_survive_the_database_round_trip():
    """The engine built from the stored rows prices the reference cases exactly."""
    prices_sync()
    engine.ensure_fresh(force=True)
    gpt = engine.cost_for_usage(
        organization=None,
        provider="openai",
        model="gpt-4o",
        usage=Usage(input_tokens=10_000, cached_input_tokens=8_000, output_tokens=500),
        at=AT,
    )
    tier = engine.cost_for_usage(
        organization=None,
        provider="anthropic",
        model="claude-sonnet-4-5",
        usage=Usage(input_tokens=250_000, cached_input_tokens=50_000, output_tokens=1_000),
        at=AT,
    )
    assert (gpt, tier) == (Decimal("0.0200000000"), Decimal("1.2525000000"))


def test_upstreams_for_the_proxy():
    prices_sync()
    Provider.objects.filter(slug="mistral").update(is_active=False)
    upstreams = provider_upstreams_all()
    assert upstreams["groq"] == ("https://api.groq.com/openai", "openai")
    assert "mistral" not in upstreams  # inactive
    assert "openai" not in upstreams  # built-ins come from settings
    engine.ensure_fresh(force=True)
    assert engine.provider_upstreams() == upstreams  # the same, without I/O


def test_online_update_is_best_effort(monkeypatch):
    from genai_prices.update_prices import UpdatePrices

    def offline(self):
        raise OSError("no network")

    monkeypatch.setattr(UpdatePrices, "fetch", offline)
    report = prices_sync(online=True)
    assert report.source == "bundled" and report.added


def test_command_twice(capsys):
    call_command("sync_prices", "--offline")
    call_command("sync_prices", "--offline")
    out = capsys.readouterr().out
    assert "0 added, 0 changed" in out.splitlines()[-1]


def test_daily_task_syncs_and_reprices(monkeypatch, settings):
    from pricing import tasks

    settings.AISPENDTRACK_PRICES_ONLINE_UPDATE = True  # no network here: falls back
    calls = []
    monkeypatch.setattr(tasks, "usage_reprice", lambda **kw: calls.append(kw) or 0)
    summary = tasks.prices_sync_task()
    assert "added" in summary and calls == [{}]


def test_beat_schedules_the_daily_sync():
    from config.celery import app

    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "pricing.tasks.prices_sync_task" in tasks
