"""The compiled price book the engine reads: plain objects, no database.

Built once per price version from row dicts (the database's, or genai-prices'
flattened data in benchmarks and tests). Model names resolve through an
exact-name dict first, then the compiled match rules, and every answer
(a miss included) is memoised, so a repeated name costs one dict lookup.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any, cast

from pricing.matching import (
    compile_rule,
    exact_names,
    has_only_equals,
    in_window,
    normalize_compact_date,
    parse_time_window,
)

logger = logging.getLogger(__name__)
PRICE_SCALE = 10**10  # prices held as integers of 1e-10 USD per million tokens
COST_EXPONENT = -16  # tokens × 1e-10 USD / 1e6 tokens = 1e-16 USD
DECIMAL_CONTEXT = Context(prec=50, rounding=ROUND_HALF_EVEN)
_MEMO_LIMIT = 50_000
# "Not in the memo yet": typed as an entry so lookups stay one dict.get (no cast).
MISS = cast("ModelEntry", object())
BUILTIN_ORDER = ("openai", "anthropic", "gemini")

# (input, output, cache_read, cache_write, cache_write_1h, input_audio, output_audio)
Prices = tuple[int, int, int, int, int, int, int]


def _units(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int((Decimal(value) * PRICE_SCALE).to_integral_value(ROUND_HALF_EVEN))


def resolve_prices(raw: dict[str, Any], *, claude: bool) -> Prices:
    """Per-Mtok prices with the documented fallbacks applied."""
    price_in = _units(raw.get("input"))
    price_out = _units(raw.get("output")) or 0
    base_in = price_in or 0
    cache_read = _units(raw.get("cache_read"))
    cache_write = _units(raw.get("cache_write"))
    write_1h = _units(raw.get("cache_write_1h"))
    if write_1h is None:
        if claude and price_in is not None:
            write_1h = 2 * price_in
        else:
            write_1h = base_in if cache_write is None else cache_write
    audio_in = _units(raw.get("input_audio"))
    audio_out = _units(raw.get("output_audio"))
    return (
        base_in,
        price_out,
        base_in if cache_read is None else cache_read,
        base_in if cache_write is None else cache_write,
        write_1h,
        base_in if audio_in is None else audio_in,
        price_out if audio_out is None else audio_out,
    )


class Rate:
    __slots__ = ("effective_from", "window", "prices", "tiers")

    def __init__(self, row: dict[str, Any], *, claude: bool) -> None:
        self.effective_from: datetime = row["effective_from"]
        self.window = parse_time_window(row.get("time_window") or "")
        self.prices = resolve_prices(row, claude=claude)
        tiers = []
        for tier in row.get("tiers") or ():
            merged = {**row, **{k: v for k, v in tier.items() if k != "above"}}
            tiers.append((int(tier["above"]), resolve_prices(merged, claude=claude)))
        # Highest threshold first: the first one the call exceeds applies.
        self.tiers = tuple(sorted(tiers, reverse=True))


class ModelEntry:
    """All effective-dated prices of one model at one provider."""

    __slots__ = ("provider", "model_id", "rates", "starts", "timed")

    def __init__(self, provider: str, model_id: str, rates: list[Rate]) -> None:
        self.provider = provider
        self.model_id = model_id
        self.rates = sorted((r for r in rates if r.window is None), key=lambda r: r.effective_from)
        self.starts = [r.effective_from for r in self.rates]
        self.timed = tuple(sorted((r for r in rates if r.window), key=lambda r: r.effective_from))

    def rate_at(self, at: datetime) -> Rate | None:
        if self.timed:
            utc = at.astimezone(UTC)
            second = utc.hour * 3600 + utc.minute * 60 + utc.second
            for rate in reversed(self.timed):
                window = rate.window
                if window is not None and rate.effective_from <= at and in_window(second, window):
                    return rate
        if not self.rates:
            return self.timed[0] if self.timed else None
        index = bisect_right(self.starts, at) - 1
        # Before a model's first price, that first price applies (as in
        # genai-prices): a price added today also prices yesterday's backlog.
        return self.rates[index if index >= 0 else 0]

    def all_day_rate_at(self, at: datetime) -> Rate | None:
        """`rate_at` without daily time windows (None if the model has only those)."""
        if not self.rates:
            return None
        index = bisect_right(self.starts, at) - 1
        return self.rates[index if index >= 0 else 0]


class OverrideRate:
    __slots__ = ("provider", "effective_from", "prices")

    def __init__(self, row: dict[str, Any]) -> None:
        self.provider = (row.get("provider") or "").lower()
        self.effective_from = row["effective_from"]
        self.prices = resolve_prices(row, claude="claude" in row["model"].lower())


class Snapshot:
    """An immutable view of every price, built once per version."""

    def __init__(
        self,
        *,
        version: object,
        providers: Iterable[dict[str, Any]],
        rows: Iterable[dict[str, Any]],
        overrides: Iterable[dict[str, Any]] = (),
    ) -> None:
        self.version = version
        self.memo: dict[tuple[str, str], ModelEntry | None] = {}
        self.exact: dict[tuple[str, str], ModelEntry] = {}
        self.rules: dict[str, list[tuple[Any, ModelEntry]]] = {}
        self.overrides: dict[int, dict[str, list[OverrideRate]]] = {}
        self._build_models(rows)
        self._build_fallback(list(providers))
        self._build_overrides(overrides)

    def _build_models(self, rows: Iterable[dict[str, Any]]) -> None:
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault((row["provider_slug"], row["model_id"]), []).append(row)
        ordered = sorted(
            groups.items(),
            key=lambda kv: (kv[0][0], min(r.get("match_order") or 0 for r in kv[1]), kv[0][1]),
        )
        self.entry_count = len(ordered)
        self.entries: list[ModelEntry] = []
        for (slug, model_id), group in ordered:
            claude = "claude" in model_id.lower()
            entry = ModelEntry(slug, model_id, [Rate(row, claude=claude) for row in group])
            self.entries.append(entry)
            # The newest row's rule speaks for the model.
            rule = max(group, key=lambda r: r["effective_from"]).get("match_rules")
            names = {model_id.lower()}
            if rule:
                names |= exact_names(rule)
                if not has_only_equals(rule):
                    try:
                        matcher = compile_rule(rule)
                    except ValueError:
                        logger.warning("skipping bad match rule of %s/%s", slug, model_id)
                    else:
                        self.rules.setdefault(slug, []).append((matcher, entry))
            for name in names:
                self.exact.setdefault((slug, name), entry)

    def _build_fallback(self, providers: Iterable[dict[str, Any]]) -> None:
        slugs = sorted({p["slug"] for p in providers} | {s for s, _ in self.exact})
        self.own_rules: list[tuple[str, Any]] = []
        for provider in sorted(providers, key=lambda p: p["slug"]):
            if provider.get("model_match"):
                try:
                    self.own_rules.append((provider["slug"], compile_rule(provider["model_match"])))
                except ValueError:
                    logger.warning("skipping bad model_match of provider %s", provider["slug"])
        builtins = [s for s in BUILTIN_ORDER if s in slugs]
        self.fallback_order = builtins + [s for s in slugs if s not in builtins]
        # What the proxy's /<slug>/v1/* routes forward to (active, with a base URL).
        self.upstreams = {
            p["slug"]: (p["base_url"].rstrip("/"), p.get("api_style") or "openai")
            for p in providers
            if p.get("base_url") and p.get("is_active", True)
        }

    def _build_overrides(self, overrides: Iterable[dict[str, Any]]) -> None:
        for row in overrides:
            by_model = self.overrides.setdefault(row["organization_id"], {})
            by_model.setdefault(row["model"].lower(), []).append(OverrideRate(row))
        for by_model in self.overrides.values():
            for rates in by_model.values():
                # Provider-specific before any-provider, newest first (stable sorts).
                rates.sort(key=lambda r: r.effective_from, reverse=True)
                rates.sort(key=lambda r: r.provider == "")

    # --- model resolution -----------------------------------------------------

    def _match_in(self, slug: str, name: str) -> ModelEntry | None:
        entry = self.exact.get((slug, name))
        if entry is not None:
            return entry
        for matcher, candidate in self.rules.get(slug, ()):
            if matcher(name):
                return candidate
        return None

    def resolve(self, provider: str, model: str) -> ModelEntry | None:
        """The model's entry: at `provider` first, then across all providers."""
        key = (provider, model)
        entry = self.memo.get(key, MISS)
        if entry is not MISS:
            return entry
        entry = self._resolve_slow(provider.lower(), model.strip().lower())
        if len(self.memo) >= _MEMO_LIMIT:  # unknown names must not grow it forever
            self.memo.clear()
        self.memo[key] = entry
        return entry

    def _resolve_slow(self, slug: str, name: str) -> ModelEntry | None:
        if not name:
            return None
        names = [name]
        # Gateways prefix the vendor ("openai/gpt-4o") and spell dates compactly.
        if "/" in name:
            names.append(name.split("/", 1)[1])
        names += [n for n in map(normalize_compact_date, list(names)) if n not in names]
        order = [slug]
        order += [s for s, matcher in self.own_rules if s != slug and matcher(name)]
        order += [s for s in self.fallback_order if s not in order]
        for candidate_slug in order:
            for candidate in names:
                entry = self._match_in(candidate_slug, candidate)
                if entry is not None:
                    return entry
        return None

    def override_prices(
        self, org_id: int, provider: str, model: str, entry: ModelEntry | None, at: datetime
    ) -> Prices | None:
        by_model = self.overrides[org_id]
        slug = provider.lower()
        names = [model.strip().lower()]
        if entry is not None:
            names.append(entry.model_id.lower())
        for name in names:
            for rate in by_model.get(name, ()):
                if rate.provider in (slug, "") and rate.effective_from <= at:
                    return rate.prices
        return None
