"""µs per `pricing.engine.cost_for_usage` call, against a dict lookup + Decimal
multiply measured in the same run. The snapshot is built from genai-prices'
bundled data (the same rows `sync_prices` stores), so no database is needed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from bench import Result, measure
from pricing import engine
from pricing.genai_import import flatten, genai_providers
from pricing.snapshot import Snapshot
from pricing.usage import Usage

LIMIT_US = 20.0
NUMBER = 20_000
ORG_ID = 1


def _snapshot() -> Snapshot:
    providers, _ = genai_providers(online=False)
    data = flatten(providers)
    override = {
        "organization_id": ORG_ID,
        "provider": "",
        "model": "gpt-4o",
        "effective_from": datetime(2000, 1, 1, tzinfo=UTC),
        "input": Decimal("2"),
        "output": Decimal("8"),
    }
    return Snapshot(
        version="bench",
        providers=[{"slug": p.slug, "model_match": p.model_match} for p in data.providers],
        rows=data.rows,
        overrides=[override],
    )


def run() -> list[Result]:
    engine.snapshot_set(_snapshot())
    at = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
    chat = Usage(input_tokens=10_000, cached_input_tokens=8_000, output_tokens=500)
    claude = Usage(
        input_tokens=250_000,
        cached_input_tokens=20_000,
        cache_write_tokens=3_000,
        cache_write_1h_tokens=4_000,
        output_tokens=1_200,
    )
    cases = [
        ("gpt-4o, cached input (exact id)", 2, "openai", "gpt-4o", chat),
        ("gpt-4o-mini-2024-07-18 (dated alias)", 2, "openai", "gpt-4o-mini-2024-07-18", chat),
        (
            "claude-sonnet-4-5-20250929 (rule, tier, cache writes)",
            2,
            "anthropic",
            "claude-sonnet-4-5-20250929",
            claude,
        ),
        (
            "claude via an OpenAI-compatible gateway (fallback)",
            2,
            "groq",
            "claude-3-5-haiku-latest",
            chat,
        ),
        ("deepseek-chat (time-of-day prices)", 2, "deepseek", "deepseek-chat", chat),
        ("gpt-4o with an org override", ORG_ID, "openai", "gpt-4o", chat),
        ("unknown model (None)", 2, "openai", "my-private-model", chat),
    ]

    table = {"gpt-4o": Decimal("2.5")}
    tokens = Decimal(10_000)

    def baseline() -> Decimal:
        return table["gpt-4o"] * tokens

    baseline_us = measure(baseline, number=NUMBER * 5)
    results = [Result("baseline: dict lookup + Decimal multiply", baseline_us)]
    for title, org, provider, model, usage in cases:

        def call(org=org, provider=provider, model=model, usage=usage):
            return engine.cost_for_usage(
                organization=org, provider=provider, model=model, usage=usage, at=at
            )

        assert title.startswith("unknown") or call() is not None, title
        results.append(
            Result(title, measure(call, number=NUMBER), baseline_us=baseline_us, limit_us=LIMIT_US)
        )

    import genai_prices

    reference = genai_prices.Usage(input_tokens=10_000, cache_read_tokens=8_000, output_tokens=500)

    def library() -> object:
        return genai_prices.calc_price(
            reference, "gpt-4o", provider_id="openai", genai_request_timestamp=at
        )

    results.append(
        Result(
            "for scale: genai_prices.calc_price (gpt-4o)",
            measure(library, number=2_000),
            baseline_us=baseline_us,
            note="the library's own calculator: what pricing per call costs without a snapshot",
        )
    )
    engine.snapshot_reset()
    return results
