"""Flatten genai-prices' provider data into our rows (pure: no database).

genai-prices (MIT, data bundled in the package) describes each model with a
match rule and either one price set or a list of conditional prices:
constraint None (the first price), a StartDateConstraint (a price change:
our `effective_from`) or a TimeOfDateConstraint (a daily window: our
`time_window`). Prices are per-unit keys (`input_mtok`, `cache_read_mtok`,
`cache_write_1h_mtok`, …), each either a Decimal or TieredPrices (above N
total input tokens every token switches rate), which become our `tiers`.

Left out on purpose: price variants chosen by request context (service tier,
batch) since the proxy prices standard calls; and non-token units (web
searches, audio hours, characters, requests) that `Usage` does not carry.
A model priced only in such units is skipped; a model with no prices at all
is free (both rates 0), as genai-prices treats it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from pricing.models import PRICE_EPOCH, ApiStyle

# Our provider slugs where they differ from genai-prices' ids.
SLUG_FOR_GENAI_ID = {"google": "gemini"}
API_STYLE_FOR_SLUG = {"anthropic": ApiStyle.ANTHROPIC, "gemini": ApiStyle.GEMINI}
# OpenAI-compatible upstreams whose chat API lives at <base_url>/v1/…, seeded
# on a provider's first sync so `/<slug>/v1/*` works out of the box. Staff
# can change or clear them in admin; sync never touches an existing provider.
KNOWN_BASE_URLS = {
    "groq": "https://api.groq.com/openai",
    "mistral": "https://api.mistral.ai",
    "deepseek": "https://api.deepseek.com",
    "together": "https://api.together.xyz",
    "openrouter": "https://openrouter.ai/api",
    "x-ai": "https://api.x.ai",
    "fireworks": "https://api.fireworks.ai/inference",
    "cerebras": "https://api.cerebras.ai",
}
# genai-prices price key → our column.
PRICE_KEYS = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cache_read",
    "cache_write_mtok": "cache_write",
    "cache_write_5m_mtok": "cache_write",
    "cache_write_1h_mtok": "cache_write_1h",
    "input_audio_mtok": "input_audio",
    "output_audio_mtok": "output_audio",
}
PRICE_COLUMNS = tuple(dict.fromkeys(PRICE_KEYS.values()))


@dataclass
class _Conditional:
    constraint: Any
    prices: Any


@dataclass
class ProviderData:
    slug: str
    name: str
    api_style: str
    base_url: str
    model_match: Any


@dataclass
class FlatData:
    providers: list[ProviderData] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "provider/model: why"


def decimal_text(value: Decimal) -> str:
    """A Decimal as plain text without exponent or trailing zeros ("22.5", "10")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def clause_to_json(clause: Any) -> dict[str, Any]:
    """A genai-prices clause dataclass → our JSON rule (see pricing.matching)."""
    for kind in ("equals", "starts_with", "ends_with", "contains", "regex"):
        if hasattr(clause, kind):
            return {kind: getattr(clause, kind)}
    if hasattr(clause, "or_"):
        return {"or": [clause_to_json(part) for part in clause.or_]}
    if hasattr(clause, "and_"):
        return {"and": [clause_to_json(part) for part in clause.and_]}
    raise ValueError(f"unsupported genai-prices clause {clause!r}")


def _window_text(start: time, end: time) -> str:
    def utc(value: time) -> time:
        if value.tzinfo is None:
            return value
        return datetime.combine(date(1970, 1, 1), value).astimezone(UTC).time()

    def fmt(value: time) -> str:
        return value.strftime("%H:%M:%S" if value.second else "%H:%M")

    return f"{fmt(utc(start))}-{fmt(utc(end))}"


def _when(constraint: Any) -> tuple[datetime, str]:
    """(effective_from, time_window) for a conditional price's constraint."""
    if constraint is None:
        return PRICE_EPOCH, ""
    if hasattr(constraint, "start_date"):
        return datetime.combine(constraint.start_date, time(0), tzinfo=UTC), ""
    if hasattr(constraint, "start_time"):
        return PRICE_EPOCH, _window_text(constraint.start_time, constraint.end_time)
    raise ValueError(f"unsupported genai-prices constraint {constraint!r}")


def _flatten_prices(model_price: Any) -> tuple[dict[str, Decimal | None], list[dict], bool]:
    """(columns, tiers, token_priced) of one genai-prices ModelPrice."""
    columns: dict[str, Decimal | None] = dict.fromkeys(PRICE_COLUMNS)
    tiered: dict[str, list[tuple[int, Decimal]]] = {}
    values = {k: v for k, v in vars(model_price).items() if v is not None and not k.startswith("_")}
    for key, value in values.items():
        column = PRICE_KEYS.get(key)
        if column is None:
            continue
        if hasattr(value, "tiers"):
            columns[column] = value.base
            tiered[column] = sorted((tier.start, tier.price) for tier in value.tiers)
        else:
            columns[column] = value
    token_priced = any(v is not None for v in columns.values())
    if not values:  # no prices at all: a free model
        columns["input"] = columns["output"] = Decimal(0)
        token_priced = True
    tiers = []
    for start in sorted({start for steps in tiered.values() for start, _ in steps}):
        tier: dict[str, Any] = {"above": start}
        for column, steps in tiered.items():
            # Above `start` tokens, a column uses its highest step at or below it.
            applicable = [price for step, price in steps if step <= start]
            if applicable:
                tier[column] = decimal_text(applicable[-1])
        tiers.append(tier)
    return columns, tiers, token_priced


def _provider_data(provider: Any) -> ProviderData:
    slug = SLUG_FOR_GENAI_ID.get(provider.id, provider.id)
    return ProviderData(
        slug=slug,
        name=provider.name,
        api_style=API_STYLE_FOR_SLUG.get(slug, ApiStyle.OPENAI),
        base_url=KNOWN_BASE_URLS.get(slug, ""),
        model_match=clause_to_json(provider.model_match) if provider.model_match else None,
    )


def flatten(providers: Iterable[Any]) -> FlatData:
    """Every (provider, model, effective_from, time_window) price as a row dict."""
    out = FlatData()
    for provider in providers:
        pdata = _provider_data(provider)
        out.providers.append(pdata)
        for order, model in enumerate(provider.models, start=1):
            conditional = (
                model.prices
                if isinstance(model.prices, list)
                else [_Conditional(constraint=None, prices=model.prices)]
            )
            rule = clause_to_json(model.match)
            by_key: dict[tuple[datetime, str], dict[str, Any]] = {}
            for entry in conditional:
                effective_from, window = _when(entry.constraint)
                columns, tiers, token_priced = _flatten_prices(entry.prices)
                if not token_priced:
                    out.skipped.append(f"{pdata.slug}/{model.id}: not priced per token")
                    continue
                # A later entry with the same key wins, as in genai-prices.
                by_key[(effective_from, window)] = {
                    "provider_slug": pdata.slug,
                    "model_id": model.id,
                    "name": (model.name or "")[:200],
                    "match_rules": rule,
                    "match_order": order,
                    "effective_from": effective_from,
                    "time_window": window,
                    "tiers": tiers,
                    "notes": model.price_comments or "",
                    **columns,
                }
            out.rows.extend(by_key.values())
    return out


def genai_providers(*, online: bool) -> tuple[list[Any], str]:
    """genai-prices' providers and where they came from ("online" or "bundled").

    The online fetch is best-effort: any failure (no network, bad payload)
    falls back to the data bundled in the installed package.
    """
    if online:
        import logging

        try:
            from genai_prices.update_prices import UpdatePrices

            snapshot = UpdatePrices().fetch()
            if snapshot is not None and snapshot.providers:
                return list(snapshot.providers), "online"
        except Exception as exc:  # any failure: keep the bundled data
            logging.getLogger(__name__).warning(
                "genai-prices online update failed (%s: %s); using the bundled data",
                type(exc).__name__,
                exc,
            )
    from genai_prices.data import providers

    return list(providers), "bundled"


@functools.cache
def context_windows_bundled() -> dict[tuple[str, str], int]:
    """(our provider slug, lowercased model id) → context window in tokens, from
    genai-prices' bundled data (~1,400 models have one). Read once per process."""
    from genai_prices.data import providers

    windows: dict[tuple[str, str], int] = {}
    for provider in providers:
        slug = SLUG_FOR_GENAI_ID.get(provider.id, provider.id)
        for model in provider.models:
            if model.context_window:
                windows[(slug, model.id.lower())] = int(model.context_window)
    return windows
