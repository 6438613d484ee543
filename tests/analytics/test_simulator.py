"""The cost simulator: exact against the ledger, hand-computed swaps, the quality filter."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from analytics.models import UsageEvent
from analytics.periods import Period
from analytics.simulator import simulate, simulate_features
from pricing import engine
from pricing.genai_import import flatten, genai_providers
from pricing.models import ModelBenchmark
from pricing.usage import Usage
from tests.analytics.conftest import call
from tests.pricing.conftest import snapshot_of

NOW = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)  # after o3's 2025-06-10 price cut
AUGUST = Period(date(2025, 8, 1), date(2025, 8, 31), ZoneInfo("UTC"))
T0 = datetime(2025, 8, 10, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def price_data():
    providers, _ = genai_providers(online=False)
    return flatten(providers)


@pytest.fixture
def bundled(price_data):
    """genai-prices' bundled prices in the engine (no price rows in the database)."""
    engine.snapshot_set(snapshot_of(price_data))
    yield
    engine.snapshot_reset()


def priced(org, at, *, provider, model, feature="chat", customer_id="", **tokens):
    """A call priced by the engine exactly as the proxy prices it."""
    record = call(org, at, provider=provider, model=model, feature=feature, customer_id=customer_id)
    record.usage = Usage(**tokens)
    record.cost = engine.cost_for_usage(
        organization=org, provider=provider, model=model, usage=record.usage, at=at
    )
    assert record.cost is not None
    return record


def ledger_cost(org, **where) -> Decimal:
    """The oracle: the events' own costs, added up here."""
    return sum((e.cost for e in UsageEvent.objects.filter(organization=org, **where)), Decimal(0))


def test_repricing_the_current_models_gives_back_the_ledger_cost_exactly(org, ingest, bundled):
    sonnet = {"provider": "anthropic", "model": "claude-sonnet-4-5"}
    o3 = {"provider": "openai", "model": "o3"}
    ingest(
        # Cache reads and both kinds of cache writes, under the 200k tier.
        priced(
            org,
            T0,
            **sonnet,
            input_tokens=10_000,
            cached_input_tokens=2_000,
            cache_write_tokens=3_000,
            cache_write_1h_tokens=4_000,
            output_tokens=500,
        ),
        # Above 200k input: every token at the tier's rates.
        priced(
            org,
            T0 + timedelta(hours=2),
            **sonnet,
            input_tokens=250_000,
            cached_input_tokens=50_000,
            cache_write_tokens=7_001,
            output_tokens=1_003,
        ),
        # Exactly 200k is not above the tier.
        priced(org, T0 + timedelta(days=1), **sonnet, input_tokens=200_000, output_tokens=17),
        # Reasoning inside output.
        priced(
            org,
            T0 + timedelta(days=2),
            **o3,
            input_tokens=1_234,
            cached_input_tokens=1_024,
            output_tokens=5_555,
            reasoning_tokens=4_321,
        ),
        # Another feature: not in the scope.
        priced(org, T0, **o3, feature="search", input_tokens=999, output_tokens=9),
    )
    sim = simulate(organization=org, period=AUGUST, scope="feature", value="chat", now=NOW)
    expected = ledger_cost(org, feature="chat")
    assert expected > 0
    assert sim.actual_cost == expected
    assert sim.repriced_cost == expected
    assert [m.repriced_cost for m in sim.used] == [
        ledger_cost(org, feature="chat", model="claude-sonnet-4-5"),
        ledger_cost(org, feature="chat", model="o3"),
    ]
    assert sim.largest_input_tokens == 250_000
    assert not sim.unpriced
    # Each single model reproduces its own cost too.
    for model in ("claude-sonnet-4-5", "o3"):
        one = simulate(organization=org, period=AUGUST, scope="model", value=model, now=NOW)
        assert one.repriced_cost == one.actual_cost == ledger_cost(org, model=model)


def test_one_swap_by_hand(org, ingest, bundled):
    # o3 ($2 in / $8 out): 10,000 in + 5,000 out (4,000 of it reasoning)
    # = 20,000 + 40,000 µ$ = $0.06.
    ingest(
        priced(
            org,
            T0,
            provider="openai",
            model="o3",
            input_tokens=10_000,
            output_tokens=5_000,
            reasoning_tokens=4_000,
        )
    )
    sim = simulate(organization=org, period=AUGUST, scope="model", value="o3", now=NOW)
    assert sim.actual_cost == Decimal("0.06")
    # gpt-4o-mini ($0.15 / $0.60): 1,500 + 3,000 µ$ = $0.0045; saving $0.0555 = 92.50 %.
    everyone = sim.candidates + sim.no_benchmark_data + sim.below_quality + sim.cannot_fit
    (mini,) = [c for c in everyone if (c.provider, c.model) == ("openai", "gpt-4o-mini")]
    assert mini.projected_cost == Decimal("0.0045")
    assert mini.saving == Decimal("0.0555")
    assert mini.saving_percent == Decimal("92.50")
    assert mini.context_window == 128_000
    # No scores at all: nothing is "safe", everything that fits has no benchmark data.
    assert not sim.benchmarks_known
    assert sim.candidates == []
    assert mini in sim.no_benchmark_data
    assert all((c.provider, c.model) != ("openai", "o3") for c in everyone)


def test_a_candidate_below_the_quality_bar_is_hidden_and_says_why(org, ingest, bundled):
    ingest(priced(org, T0, provider="openai", model="o3", input_tokens=10_000, output_tokens=5_000))
    for model, score in (("o3", "83.3"), ("gpt-4o-mini", "40.2"), ("claude-sonnet-4-5", "83.4")):
        ModelBenchmark.objects.create(
            model=model,
            benchmark="GPQA",
            score=Decimal(score),
            source_url="https://example.org/gpqa",
            as_of=date(2025, 8, 1),
        )
    sim = simulate(organization=org, period=AUGUST, scope="model", value="o3", now=NOW)
    by_name = {c.model: c for c in sim.candidates}
    # Sonnet 4.5 scores higher: safe. ($3 / $15: 30,000 + 75,000 µ$ = $0.105, dearer.)
    assert by_name["claude-sonnet-4-5"].projected_cost == Decimal("0.105")
    assert by_name["claude-sonnet-4-5"].saving == Decimal("-0.045")
    (mini,) = [c for c in sim.below_quality if c.model == "gpt-4o-mini"]
    # (83.3 − 40.2) / 83.3 = 51.7 % below.
    assert "GPQA" in mini.reason and "51.7" in mini.reason
    assert sim.best is None  # the only safe candidate is dearer
    # A looser bar lets it through.
    loose = simulate(
        organization=org,
        period=AUGUST,
        scope="model",
        value="o3",
        now=NOW,
        max_score_drop=Decimal(60),
    )
    assert "gpt-4o-mini" in {c.model for c in loose.candidates}
    assert loose.best is not None and loose.best.saving > 0


def test_a_small_context_window_cannot_take_the_largest_input(org, ingest, bundled):
    ingest(
        priced(
            org,
            T0,
            provider="anthropic",
            model="claude-sonnet-4-5",
            input_tokens=300_000,
            output_tokens=10,
        )
    )
    sim = simulate(organization=org, period=AUGUST, now=NOW)
    (mini,) = [c for c in sim.cannot_fit if c.model == "gpt-4o-mini"]
    assert mini.reason == "context window 128,000 tokens < largest input 300,000 tokens"
    assert all(c.context_window >= 300_000 for c in sim.no_benchmark_data)


def test_unpriced_usage_is_reported_apart(org, ingest, bundled):
    ingest(
        call(org, T0, provider="openai", model="home-made-llm", cost=None, feature="chat"),
        priced(org, T0, provider="openai", model="gpt-4o", input_tokens=1_000, output_tokens=100),
    )
    sim = simulate(organization=org, period=AUGUST, now=NOW)
    assert [m.model for m in sim.unpriced] == ["home-made-llm"]
    assert [m.model for m in sim.used] == ["gpt-4o"]
    assert sim.actual_cost == ledger_cost(org, model="gpt-4o")
    assert sim.calls == 2


def test_another_organizations_usage_never_counts(org, other_org, ingest, bundled):
    ingest(
        priced(
            other_org,
            T0,
            provider="openai",
            model="gpt-4o",
            feature="chat",
            input_tokens=5_000,
            output_tokens=100,
        )
    )
    sim = simulate(organization=org, period=AUGUST, scope="feature", value="chat", now=NOW)
    assert sim.used == [] and sim.actual_cost == 0 and sim.calls == 0
    assert simulate_features(organization=org, period=AUGUST, now=NOW) == []


def test_all_features_ranks_the_best_safe_saving(org, ingest, bundled):
    ingest(
        priced(
            org,
            T0,
            provider="openai",
            model="o3",
            feature="big",
            input_tokens=100_000,
            output_tokens=50_000,
        ),
        priced(
            org,
            T0,
            provider="openai",
            model="o3",
            feature="small",
            input_tokens=1_000,
            output_tokens=500,
        ),
    )
    for model, score in (("o3", "80"), ("gpt-4o-mini", "79")):
        ModelBenchmark.objects.create(
            model=model,
            benchmark="X",
            score=Decimal(score),
            source_url="https://example.org/x",
            as_of=date(2025, 8, 1),
        )
    ranking = simulate_features(organization=org, period=AUGUST, now=NOW)
    assert [r.feature for r in ranking] == ["big", "small"]
    # big: o3 $0.2 + $0.4 = $0.6; gpt-4o-mini $0.015 + $0.03 = $0.045: saves $0.555.
    assert ranking[0].best is not None
    assert ranking[0].best.model == "gpt-4o-mini"
    assert ranking[0].best.saving == Decimal("0.555")
    assert ranking[1].best is not None and ranking[1].best.saving == Decimal("0.00555")
