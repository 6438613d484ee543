"""Pricing fixtures: a snapshot of genai-prices' bundled data (no database),
price rows in the database, and a clean engine for every test."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pricing import engine
from pricing.genai_import import flatten, genai_providers
from pricing.models import ModelPrice, PriceSource, Provider
from pricing.snapshot import Snapshot

# A day after every reference price used here took effect (o3's cut: 2025-06-10).
AT = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clean_engine():
    """The engine's snapshot is per process: never let one test's prices leak."""
    engine.snapshot_reset()
    yield
    engine.snapshot_reset()


@pytest.fixture(scope="session")
def bundled_data():
    providers, _ = genai_providers(online=False)
    return flatten(providers)


def snapshot_of(data, overrides=()) -> Snapshot:
    return Snapshot(
        version="test",
        providers=[{"slug": p.slug, "model_match": p.model_match} for p in data.providers],
        rows=data.rows,
        overrides=overrides,
    )


@pytest.fixture
def bundled(bundled_data) -> Snapshot:
    """genai-prices' bundled prices installed in the engine (no database)."""
    snapshot = snapshot_of(bundled_data)
    engine.snapshot_set(snapshot)
    return snapshot


@pytest.fixture
def price_row(builtin_providers):
    """Create a global price row: price_row("acme-llm", input="1", output="2", ...)."""

    def create(model_id: str, *, provider: str = "openai", **fields) -> ModelPrice:
        fields.setdefault("source", PriceSource.ADMIN)
        for name in ("input", "output", "cache_read", "cache_write", "cache_write_1h"):
            if isinstance(fields.get(name), str):
                fields[name] = Decimal(fields[name])
        return ModelPrice.objects.create(
            provider=Provider.objects.get(slug=provider), model_id=model_id, **fields
        )

    return create
