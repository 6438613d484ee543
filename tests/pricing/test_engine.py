"""Reference costs computed by hand from the providers' list prices (USD per
million tokens), not from the engine: µ$ = tokens × $/Mtok."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from pricing import engine
from pricing.usage import Usage
from tests.pricing.conftest import AT, snapshot_of


def cost(provider, model, *, at=AT, organization=None, **tokens):
    return engine.cost_for_usage(
        organization=organization, provider=provider, model=model, usage=Usage(**tokens), at=at
    )


def usd(text: str) -> Decimal:
    return Decimal(text).quantize(Decimal("1e-10"))


def test_openai_cached_input_is_billed_at_the_cached_rate(bundled):
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output.
    # 2,000 × 2.5 + 8,000 × 1.25 + 500 × 10 = 5,000 + 10,000 + 5,000 µ$ = $0.020
    result = cost(
        "openai", "gpt-4o", input_tokens=10_000, cached_input_tokens=8_000, output_tokens=500
    )
    assert result == usd("0.020")
    assert str(result) == "0.0200000000"  # Decimal with 10 places, never a float


def test_anthropic_cache_reads_and_5_minute_and_1_hour_writes(bundled):
    # claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75 5-min write, $6 1-h write, $15 out.
    # input total 10,000 = 1,000 plain + 2,000 read + 3,000 5-min + 4,000 1-h writes.
    # 1,000×3 + 2,000×0.3 + 3,000×3.75 + 4,000×6 + 500×15
    # = 3,000 + 600 + 11,250 + 24,000 + 7,500 = 46,350 µ$
    result = cost(
        "anthropic",
        "claude-sonnet-4-5-20250929",
        input_tokens=10_000,
        cached_input_tokens=2_000,
        cache_write_tokens=3_000,
        cache_write_1h_tokens=4_000,
        output_tokens=500,
    )
    assert result == usd("0.04635")


def test_claude_opus_cache_writes(bundled):
    # claude-opus-4-1: $15 in, $1.50 read, $18.75 5-min write, $30 1-h write, $75 out.
    # 0 plain + 10,000×1.5 + 2,000×18.75 + 1,000×30 + 100×75
    # = 15,000 + 37,500 + 30,000 + 7,500 = 90,000 µ$
    result = cost(
        "anthropic",
        "claude-opus-4-1-20250805",
        input_tokens=13_000,
        cached_input_tokens=10_000,
        cache_write_tokens=2_000,
        cache_write_1h_tokens=1_000,
        output_tokens=100,
    )
    assert result == usd("0.09")


def test_above_200k_input_tokens_every_token_uses_the_tier_rate(bundled):
    # claude-sonnet-4-5 above 200k: $6 input, $0.60 cache read, $22.50 output.
    # 200,000×6 + 50,000×0.6 + 1,000×22.5 = 1,200,000 + 30,000 + 22,500 µ$
    above = cost(
        "anthropic",
        "claude-sonnet-4-5",
        input_tokens=250_000,
        cached_input_tokens=50_000,
        output_tokens=1_000,
    )
    assert above == usd("1.2525")
    # Exactly 200,000 is not above: 200,000×3 + 1,000×15 = 615,000 µ$
    at_limit = cost("anthropic", "claude-sonnet-4-5", input_tokens=200_000, output_tokens=1_000)
    assert at_limit == usd("0.615")


def test_gemini_2_5_pro_long_context_tier(bundled):
    # ≤200k: $1.25 / $10; above: $2.50 / $15.
    assert cost("gemini", "gemini-2.5-pro", input_tokens=100_000, output_tokens=2_000) == usd(
        "0.145"
    )  # 125,000 + 20,000 µ$
    assert cost("gemini", "gemini-2.5-pro", input_tokens=300_000, output_tokens=2_000) == usd(
        "0.78"
    )  # 750,000 + 30,000 µ$


def test_o_series_reasoning_tokens_are_inside_output_not_added_again(bundled):
    # o3 since 2025-06-10: $2 / $8. 5,000 output of which 4,000 reasoning.
    # 1,000×2 + 5,000×8 = 42,000 µ$ (not 9,000 output tokens).
    result = cost("openai", "o3", input_tokens=1_000, output_tokens=5_000, reasoning_tokens=4_000)
    assert result == usd("0.042")


def test_gemini_thoughts_are_billed_as_output(bundled):
    # gemini-2.5-flash: $0.30 / $2.50; the parser adds 2,000 thoughts into output (3,000).
    # 1,000×0.3 + 3,000×2.5 = 300 + 7,500 µ$
    result = cost(
        "gemini",
        "gemini-2.5-flash",
        input_tokens=1_000,
        output_tokens=3_000,
        reasoning_tokens=2_000,
    )
    assert result == usd("0.0078")


def test_audio_input_at_the_audio_rate(bundled):
    # gemini-2.5-flash: $0.30 text input, $1.00 audio input, $2.50 output.
    # 6,000×0.3 + 4,000×1 + 1,000×2.5 = 1,800 + 4,000 + 2,500 µ$
    result = cost(
        "gemini",
        "gemini-2.5-flash",
        input_tokens=10_000,
        input_audio_tokens=4_000,
        output_tokens=1_000,
    )
    assert result == usd("0.0083")


def test_dated_snapshot_prices_as_its_model(bundled):
    # gpt-4o-mini: $0.15 / $0.60. 1M in + 100k out = 150,000 + 60,000 µ$
    dated = cost("openai", "gpt-4o-mini-2024-07-18", input_tokens=1_000_000, output_tokens=100_000)
    assert dated == usd("0.21")
    assert engine.model_resolve(provider="openai", model="gpt-4o-mini-2024-07-18") == (
        "openai",
        "gpt-4o-mini",
    )
    # LiteLLM / OpenRouter spell dates compactly.
    assert engine.model_resolve(provider="openai", model="gpt-4o-2024-08-06") == (
        "openai",
        "gpt-4o",
    )
    assert engine.model_resolve(provider="openai", model="GPT-4o-20240806") == ("openai", "gpt-4o")


def test_embeddings(bundled):
    # text-embedding-3-small $0.02, -large $0.13 per Mtok; no output.
    assert cost("openai", "text-embedding-3-small", input_tokens=1_000_000) == usd("0.02")
    assert cost("openai", "text-embedding-3-large", input_tokens=500_000) == usd("0.065")


def test_price_change_mid_month_each_side_keeps_its_price(bundled):
    # OpenAI cut o3 on 2025-06-10 from $10 / $40 to $2 / $8.
    before = cost(
        "openai", "o3", at=datetime(2025, 6, 5, tzinfo=UTC), input_tokens=1_000, output_tokens=5_000
    )
    after = cost(
        "openai",
        "o3",
        at=datetime(2025, 6, 20, tzinfo=UTC),
        input_tokens=1_000,
        output_tokens=5_000,
    )
    assert before == usd("0.21")  # 10,000 + 200,000 µ$
    assert after == usd("0.042")  # 2,000 + 40,000 µ$


def test_unknown_model_has_no_price_not_zero(bundled):
    assert cost("openai", "my-private-model", input_tokens=1_000, output_tokens=10) is None
    assert cost("nowhere", "", input_tokens=1) is None


def test_free_models_cost_zero_not_none(bundled):
    result = cost("openrouter", "meta-llama/llama-3.3-70b-instruct:free", input_tokens=1_000)
    assert result == Decimal(0)


def test_unknown_provider_or_gateway_falls_back_across_providers(bundled):
    # A claude model through an OpenAI-compatible gateway still prices as Anthropic's.
    via_gateway = cost("my-gateway", "claude-sonnet-4-5", input_tokens=1_000, output_tokens=100)
    assert via_gateway == usd("0.0045")  # 3,000 + 1,500 µ$
    assert engine.model_resolve(provider="openai", model="claude-sonnet-4-5") == (
        "anthropic",
        "claude-sonnet-4-5",
    )
    # Vendor-prefixed names resolve too.
    assert engine.model_resolve(provider="my-gateway", model="openai/gpt-4o")[1] == "gpt-4o"


def test_org_override_wins_for_that_org_only(bundled_data, org, other_org):
    override = {
        "organization_id": org.pk,
        "provider": "",
        "model": "gpt-4o",
        "effective_from": datetime(2000, 1, 1, tzinfo=UTC),
        "input": Decimal("2"),
        "output": Decimal("8"),
    }
    engine.snapshot_set(snapshot_of(bundled_data, overrides=[override]))
    tokens = {"input_tokens": 10_000, "output_tokens": 1_000}
    # Negotiated $2 / $8: 20,000 + 8,000 µ$; list price $2.50 / $10: 25,000 + 10,000 µ$.
    assert cost("openai", "gpt-4o", organization=org, **tokens) == usd("0.028")
    assert cost("openai", "gpt-4o", organization=org.pk, **tokens) == usd("0.028")
    assert cost("openai", "gpt-4o-2024-11-20", organization=org.pk, **tokens) == usd("0.028")
    assert cost("openai", "gpt-4o", organization=other_org, **tokens) == usd("0.035")
    assert cost("openai", "gpt-4o", organization=None, **tokens) == usd("0.035")


def test_fallback_rates_when_a_price_is_missing(org):
    row = {
        "provider_slug": "anthropic",
        "model_id": "claude-test",
        "effective_from": datetime(2000, 1, 1, tzinfo=UTC),
        "input": Decimal("3"),
        "output": Decimal("15"),
    }
    engine.snapshot_set(snapshot_of_rows([row]))
    # No cache prices: reads and 5-min writes at the input rate; 1-h writes 2× input (Anthropic).
    # 1,000×3 + 1,000×3 + 1,000×6 + 0 output = 12,000 µ$
    result = cost(
        "anthropic",
        "claude-test",
        input_tokens=3_000,
        cached_input_tokens=1_000,
        cache_write_1h_tokens=1_000,
    )
    assert result == usd("0.012")


def test_time_of_day_prices_win_inside_their_window():
    base = {"provider_slug": "deepseek", "model_id": "ds", "input": Decimal("1"), "output": 0}
    rows = [
        {**base, "effective_from": datetime(2000, 1, 1, tzinfo=UTC)},
        {
            **base,
            "effective_from": datetime(2000, 1, 1, tzinfo=UTC),
            "time_window": "16:30-00:30",
            "input": Decimal("0.5"),
        },
    ]
    engine.snapshot_set(snapshot_of_rows(rows))
    peak = cost("deepseek", "ds", at=datetime(2025, 3, 1, 12, tzinfo=UTC), input_tokens=1_000_000)
    night = cost("deepseek", "ds", at=datetime(2025, 3, 1, 23, tzinfo=UTC), input_tokens=1_000_000)
    assert (peak, night) == (usd("1"), usd("0.5"))


def test_rounds_half_even_to_ten_places():
    assert engine.cost_decimal(15_000_000) == Decimal("0.0000000015")
    assert engine.cost_decimal(25_000_000) == Decimal("0.0000000025")
    assert engine.cost_decimal(500_000) == Decimal("0E-10")  # half to even (0)
    assert engine.cost_decimal(1_500_000) == Decimal("0.0000000002")  # half to even (2)
    assert engine.cost_decimal(1_500_001) == Decimal("0.0000000002")


def test_naive_time_means_utc(bundled):
    naive = datetime(2025, 6, 20)  # noqa: DTZ001 - on purpose
    assert cost("openai", "o3", at=naive, input_tokens=1_000) == usd("0.002")


def test_agrees_with_genai_prices_own_calculator(bundled, bundled_data):
    """Every token-priced model, priced by genai_prices.calc_price and by us."""
    import genai_prices

    usage = Usage(
        input_tokens=250_000, cached_input_tokens=2_000, cache_write_tokens=1_000, output_tokens=500
    )
    reference = genai_prices.Usage(
        input_tokens=250_000, cache_read_tokens=2_000, cache_write_tokens=1_000, output_tokens=500
    )
    checked = 0
    for provider in genai_prices.data_snapshot.get_snapshot().providers:
        slug = "gemini" if provider.id == "google" else provider.id
        for model in provider.models:
            ours = engine.cost_for_usage(
                organization=None, provider=slug, model=model.id, usage=usage, at=AT
            )
            try:
                theirs = genai_prices.calc_price(
                    reference, model.id, provider_id=provider.id, genai_request_timestamp=AT
                )
            except LookupError:
                continue
            if ours is None or theirs.model_price.requests_kcount:
                continue  # not priced per token / a per-request fee we do not model
            assert ours == theirs.total_price.quantize(Decimal("1e-10")), (slug, model.id)
            checked += 1
    assert checked > 2_000


def snapshot_of_rows(rows):
    from pricing.snapshot import Snapshot

    return Snapshot(version="test", providers=[], rows=rows)


def test_on_an_event_loop_nothing_loaded_means_none_until_aensure_fresh(monkeypatch):
    loads = []
    monkeypatch.setattr(engine, "ensure_fresh", lambda force=False: loads.append(force))

    async def on_loop():
        return cost("openai", "gpt-4o", input_tokens=1)

    assert asyncio.run(on_loop()) is None  # never blocks the loop with a database read
    assert loads == []


@pytest.mark.django_db(transaction=True)
def test_aensure_fresh_loads_prices_off_the_loop(price_row):
    price_row("acme-llm", input="1", output="2")

    async def on_loop():
        reloaded = await engine.aensure_fresh()
        # The reload ran in asgiref's sync thread: close its connection (test teardown).
        await sync_to_async(connections.close_all)()
        return reloaded, cost("openai", "acme-llm", input_tokens=1_000_000)

    assert asyncio.run(on_loop()) == (True, usd("1"))
    # Not due again for a few seconds: returns at once without I/O.
    assert asyncio.run(engine.aensure_fresh()) is False
