"""The cost engine: what one call cost, from an in-memory snapshot of prices.

    cost = (input − cache_read − cache_write_5m − cache_write_1h − input_audio) × input
         + cache_read × cache_read + cache_write_5m × cache_write
         + cache_write_1h × cache_write_1h + input_audio × input_audio
         + (output − output_audio) × output + output_audio × output_audio

per million tokens (Usage conventions: input is the total incl. cache reads
and writes; reasoning / Gemini thoughts are inside output and billed as
output). A context tier is chosen by the call's total input tokens. Missing
rates fall back: cache read/write and audio input → input, audio output →
output, 1-hour cache write → 2× input for Claude models (Anthropic's
published rule) else the 5-minute write. Arithmetic is in integers
(prices held as 1e-10 USD per Mtok), one Decimal at the end, 10 places.

Freshness (how the snapshot reloads):
- `cost_for_usage` never does I/O. It reads the current snapshot: a few dict
  lookups and integer sums (see `make bench`).
- `ensure_fresh()` (sync) / `await aensure_fresh()` (async: the work runs in
  a thread, the event loop never blocks) check at most every
  AISPENDTRACK_PRICES_REFRESH_SECONDS (default 5) a version number: the
  shared cache first, the `PricingVersion` row when the cache has none (its
  copy lives 30 s). When the version moved they rebuild the snapshot from the
  database and swap it in atomically. Every price write bumps the version
  (pricing.services), so a change reaches every process within seconds.
- The proxy awaits `aensure_fresh()` once at startup and then off the hot path
  (e.g. from its flush loop each second; a call that is not due returns at
  once). In a sync context the first `cost_for_usage` loads the snapshot
  itself; on an event loop with nothing loaded it returns None (priced=false,
  re-priced later) and logs a warning, since blocking the loop is worse.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pricing.snapshot import (
    COST_EXPONENT,
    DECIMAL_CONTEXT,
    MISS,
    PRICE_SCALE,
    ModelEntry,
    Prices,
    Rate,
    Snapshot,
)
from pricing.usage import Usage

logger = logging.getLogger(__name__)
COST_PLACES = 10  # as the ledger stores it (analytics.models.COST_PLACES)
ROUNDING_STEP = 10 ** (-COST_EXPONENT - COST_PLACES)
HALF_STEP = ROUNDING_STEP // 2


def cost_for_usage(
    *, organization: Any, provider: str, model: str, usage: Usage, at: datetime
) -> Decimal | None:
    """USD cost of one call (Decimal, 10 places), or None when no price matches.

    `organization` is an Organization or its pk (org overrides win over the
    global table); `provider` is the proxy's slug (openai, anthropic, gemini,
    or an OpenAI-compatible provider's slug); `at` is when the call was made
    (aware; naive means UTC). No database or cache I/O: see the module doc.
    """
    prices = usage_prices(
        organization=organization,
        provider=provider,
        model=model,
        input_tokens=usage.input_tokens,
        at=at,
    )
    return None if prices is None else cost_decimal(cost_units(prices, usage))


def usage_prices(
    *, organization: Any, provider: str, model: str, input_tokens: int, at: datetime
) -> Prices | None:
    """The rates `cost_for_usage` applies to a call of `input_tokens` total
    input at `at` (org override, else the global price and its context tier),
    or None when no price matches. No I/O. The cost simulator prices the
    usage it re-prices with this same function."""
    override, rate = _price_sources(organization, provider, model, at)
    if override is not None:
        return override
    return None if rate is None else tier_prices(rate, input_tokens)


def _price_sources(
    organization: Any, provider: str, model: str, at: datetime
) -> tuple[Prices | None, Rate | None]:
    """(the organization's override prices, or None; else the list rate at
    `at`, or None): the one lookup `usage_prices` and `applied_price` share."""
    snapshot = _state.snapshot or _first_load()
    if snapshot is None:
        return None, None
    entry = snapshot.memo.get((provider, model), MISS)
    if entry is MISS:
        entry = snapshot.resolve(provider, model)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    org_id = organization if isinstance(organization, int) else getattr(organization, "pk", None)
    if org_id in snapshot.overrides:
        prices = snapshot.override_prices(org_id, provider, model, entry, at)
        if prices is not None:
            return prices, None
    return None, (None if entry is None else entry.rate_at(at))


# The order of a `Prices` tuple (pricing.snapshot), as people read it.
PRICE_NAMES = (
    "input",
    "output",
    "cache read",
    "cache write 5 m",
    "cache write 1 h",
    "input audio",
    "output audio",
)


@dataclass(frozen=True, slots=True)
class AppliedPrice:
    """Which price a call is charged at, for people (the request detail page)."""

    override: bool  # the organization's own price, not the list price
    tier_above: int | None  # the context tier (input tokens above N), None: base
    rates: tuple[tuple[str, Decimal], ...]  # (name, USD per million tokens), set ones only


def applied_price(
    *, organization: Any, provider: str, model: str, input_tokens: int, at: datetime
) -> AppliedPrice | None:
    """The price `usage_prices` applies, with where it came from. No I/O."""
    override, rate = _price_sources(organization, provider, model, at)
    if override is not None:
        return AppliedPrice(override=True, tier_above=None, rates=_rates(override))
    if rate is None:
        return None
    tier_above = next((above for above, _ in rate.tiers if input_tokens > above), None)
    return AppliedPrice(
        override=False, tier_above=tier_above, rates=_rates(tier_prices(rate, input_tokens))
    )


def _rates(prices: Prices) -> tuple[tuple[str, Decimal], ...]:
    return tuple(
        (name, Decimal(units) / PRICE_SCALE)
        for name, units in zip(PRICE_NAMES, prices, strict=True)
        if units or name in ("input", "output")
    )


def tier_prices(rate: Rate, input_tokens: int) -> Prices:
    """A rate's prices for a call of `input_tokens` total input (its context tier)."""
    for above, prices in rate.tiers:
        if input_tokens > above:
            return prices
    return rate.prices


def priced_entries() -> list[ModelEntry]:
    """Every model of the price book, once each (provider, model id order).
    Empty when no snapshot can be loaded."""
    snapshot = _state.snapshot or _first_load()
    return [] if snapshot is None else snapshot.entries


def entry_prices(
    *, organization: Any, entry: ModelEntry, input_tokens: int, at: datetime
) -> Prices | None:
    """What a call to `entry`'s model would be charged at `at` (the cost
    simulator's candidates): the organization's override for that model if
    any, else its all-day price in force at `at` and the context tier of
    `input_tokens`. Daily time windows (off-peak discounts) are not assumed."""
    snapshot = _state.snapshot
    org_id = organization if isinstance(organization, int) else getattr(organization, "pk", None)
    if snapshot is not None and org_id in snapshot.overrides:
        prices = snapshot.override_prices(org_id, entry.provider, entry.model_id, entry, at)
        if prices is not None:
            return prices
    rate = entry.all_day_rate_at(at)
    return None if rate is None else tier_prices(rate, input_tokens)


def cost_for_call(
    *,
    organization: Any,
    provider: str,
    model: str,
    response_model: str,
    usage: Usage,
    at: datetime,
) -> Decimal | None:
    """The price of a call's usage, by the one model precedence that ingest
    (proxy.costing) and re-pricing (analytics.repricing) share: the model as
    asked first, then the model the provider answered with (a dated snapshot
    the asked alias has no price for). None when neither has a price."""
    cost = None
    if model:
        cost = cost_for_usage(
            organization=organization, provider=provider, model=model, usage=usage, at=at
        )
    if cost is None and response_model and response_model != model:
        cost = cost_for_usage(
            organization=organization, provider=provider, model=response_model, usage=usage, at=at
        )
    return cost


def cost_decimal(units: int) -> Decimal:
    """1e-16 USD units → USD with 10 places, rounded half-even in integers
    (several times faster than Decimal.quantize, and just as exact)."""
    tenths, rest = divmod(units, ROUNDING_STEP)
    if rest > HALF_STEP or (rest == HALF_STEP and tenths & 1):
        tenths += 1
    return Decimal(tenths).scaleb(-COST_PLACES, DECIMAL_CONTEXT)


def cost_units(prices: Prices, usage: Usage) -> int:
    """The cost in 1e-16 USD (exact integer arithmetic)."""
    p_in, p_out, p_read, p_write, p_write_1h, p_audio_in, p_audio_out = prices
    read = usage.cached_input_tokens
    write = usage.cache_write_tokens
    write_1h = usage.cache_write_1h_tokens
    audio_in = usage.input_audio_tokens
    audio_out = usage.output_audio_tokens
    text_in = usage.input_tokens - read - write - write_1h - audio_in
    text_out = usage.output_tokens - audio_out
    return (
        (text_in if text_in > 0 else 0) * p_in
        + read * p_read
        + write * p_write
        + write_1h * p_write_1h
        + audio_in * p_audio_in
        + (text_out if text_out > 0 else 0) * p_out
        + audio_out * p_audio_out
    )


def model_resolve(*, provider: str, model: str) -> tuple[str, str] | None:
    """(provider slug, canonical model id) the engine prices `model` as, or None."""
    snapshot = _state.snapshot or _first_load()
    if snapshot is None:
        return None
    entry = snapshot.resolve(provider, model)
    return None if entry is None else (entry.provider, entry.model_id)


def provider_upstreams() -> dict[str, tuple[str, str]]:
    """slug → (base_url, api_style) from the snapshot: `selectors.provider_upstreams_all`
    without I/O, as fresh as the prices (a provider save bumps the version).
    Empty until the snapshot is loaded."""
    snapshot = _state.snapshot
    return {} if snapshot is None else snapshot.upstreams


# --- freshness ------------------------------------------------------------------


class _State:
    snapshot: Snapshot | None = None
    next_check = 0.0
    lock = threading.Lock()
    warned = False


_state = _State()


def _refresh_seconds() -> float:
    from django.conf import settings

    return getattr(settings, "AISPENDTRACK_PRICES_REFRESH_SECONDS", 5.0)


def snapshot_load(*, version: object = None) -> Snapshot:
    """A snapshot of the database's prices (all organizations' overrides included)."""
    from pricing import selectors

    return Snapshot(
        version=version,
        providers=selectors.provider_rows_for_engine(),
        rows=selectors.model_price_rows_for_engine(),
        overrides=selectors.price_override_rows_all_orgs(),
    )


def ensure_fresh(*, force: bool = False) -> bool:
    """Reload the snapshot if the price version moved; True when it reloaded.

    Cheap when not due (no I/O). Errors are logged and the old snapshot kept,
    unless `force` (tests, re-pricing), where they propagate.
    """
    now = time.monotonic()
    if not force and _state.snapshot is not None and now < _state.next_check:
        return False
    if not _state.lock.acquire(blocking=force):
        return False  # another thread is reloading right now
    try:
        _state.next_check = now + _refresh_seconds()
        from pricing.selectors import pricing_version_read

        version = pricing_version_read()
        current = _state.snapshot
        if not force and current is not None and current.version == version:
            return False
        _state.snapshot = snapshot_load(version=version)
        return True
    except Exception:
        if force:
            raise
        logger.exception("price snapshot refresh failed; keeping the current prices")
        return False
    finally:
        _state.lock.release()


async def aensure_fresh(*, force: bool = False) -> bool:
    """`ensure_fresh` for the event loop: returns at once when not due, else runs
    the check (and any reload) in a thread so the loop never blocks."""
    if not force and _state.snapshot is not None and time.monotonic() < _state.next_check:
        return False
    from asgiref.sync import sync_to_async

    return await sync_to_async(ensure_fresh, thread_sensitive=True)(force=force)


def snapshot_set(snapshot: Snapshot | None) -> None:
    """Install a snapshot (benchmarks, tests); None forgets it so the next use reloads."""
    _state.snapshot = snapshot
    _state.next_check = 0.0


def snapshot_reset() -> None:
    snapshot_set(None)


def snapshot_mark_stale() -> None:
    """Make this process's next `ensure_fresh` check the version (after a local write)."""
    _state.next_check = 0.0


def _first_load() -> Snapshot | None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        try:
            ensure_fresh(force=True)
        except Exception:
            logger.exception("could not load prices; pricing this call as unpriced")
        return _state.snapshot
    if not _state.warned:
        _state.warned = True
        logger.warning(
            "prices are not loaded on this event loop: await pricing.engine.aensure_fresh() "
            "at startup; until then calls are recorded unpriced (priced=false)"
        )
    return None
