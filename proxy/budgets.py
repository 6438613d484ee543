"""The budget gate: hard caps (`Budget.action = block`) enforced in the proxy.

Hot path (`admit`, `observe`): dict lookups and integer sums in this
process, no I/O. A cap's spend in its current period is

    base + recent + pending (+ in flight to the store)

in integer units of 1e-10 USD (the ledger's 10 places: exact, and Redis adds
integers with HINCRBY, no floats):

- `base`: the ledger's cost of the scope in the period's rollup hours before
  the watermark W (an hour boundary at least LEDGER_LAG seconds old), set by
  `reconcile` from the hourly rollups every RECONCILE_SECONDS. The ledger is
  the truth: a counter that drifted (a lost push, a crashed worker) is
  corrected at the next reconcile;
- `recent`: the spend every worker observed for calls created at or after W,
  kept in per-minute slots of one Redis hash per (budget, period) and read
  back every SYNC_SECONDS (without REDIS_URL, the same hash lives in this
  process: the embedded default is one process);
- `pending`: what this worker observed since its last push.

A new period (the zone's midnight, Monday, the 1st, DST included) gets a new
hash key, so the first call after the boundary sees zero spend: it is admitted
at once and nothing carries over. Unpriced calls add no money (the ledger
counts them apart).

Overshoot bound: a call is refused once recorded spend reaches the amount; the
calls that still get through are those already in flight when it was reached,
plus, on other workers, those admitted before the next sync (≤ SYNC_SECONDS,
50 ms by default, and at once when a cap is 90 % used). Costs are known only
when calls finish: the proxy never reserves an estimate, so nothing is blocked
falsely (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis.asyncio as aioredis
from django.db import close_old_connections
from redis.exceptions import RedisError

from alerts.periods import budget_period
from alerts.selectors import CapSpec, block_budgets_all_orgs, budget_ledger_spend
from config.throttle import Every
from proxy.gates import Refusal

logger = logging.getLogger("aispendtrack.budgets")

SCALE = 10**10
SLOT_SECONDS = 60
LEDGER_LAG = 60.0
NEAR_FRACTION = 0.9  # observe() spells it as integer arithmetic
KEY_PREFIX = "aispendtrack:budget:"
KEY_SLACK_SECONDS = 86400  # a hash outlives its period by a day, then expires


def to_units(amount: Decimal) -> int:
    return int((amount * SCALE).to_integral_value(ROUND_HALF_EVEN))


def from_units(units: int) -> Decimal:
    return Decimal(units) / SCALE


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


class Cap:
    """One hard-cap budget in its current period."""

    __slots__ = (
        "amount",
        "base",
        "closed",
        "end",
        "flying",
        "key",
        "pending",
        "pending_total",
        "period",
        "recent",
        "reconciled",
        "spec",
        "start",
        "watermark",
        "zone",
    )

    def __init__(self, spec: CapSpec, now: float) -> None:
        self.spec = spec
        self.amount = to_units(spec.amount)
        self.zone = _zone(spec.timezone)
        self.closed = False  # spent >= amount: kept current by OrgCaps.update
        self.roll(now)

    def roll(self, now: float) -> None:
        """Enter the period containing `now`: every counter starts from zero."""
        self.period = budget_period(self.spec.period, self.zone, datetime.fromtimestamp(now, UTC))
        self.start = self.period.start_utc.timestamp()
        self.end = self.period.end_utc.timestamp()
        self.key = f"{KEY_PREFIX}{self.spec.id}:{int(self.start)}"
        self.base = self.recent = self.pending_total = self.flying = 0
        self.watermark = self.start
        self.pending: dict[int, int] = {}
        self.reconciled = False

    @property
    def spent(self) -> int:
        return self.base + self.recent + self.pending_total + self.flying

    def add(self, at: float, units: int) -> None:
        slot = int(at // SLOT_SECONDS)
        self.pending[slot] = self.pending.get(slot, 0) + units
        self.pending_total += units

    def absorb(self, fields: dict[str, int]) -> None:
        """Adopt the store's view of this period (base, watermark, observed slots)."""
        self.base = fields.get("base", 0)
        self.watermark = fields.get("w", int(self.start))
        first = self.watermark // SLOT_SECONDS
        self.recent = sum(
            value for name, value in fields.items() if name.isdigit() and int(name) >= first
        )


class OrgCaps:
    """An organization's caps, indexed by what a call's scope is matched on,
    and the few that are closed (spent ≥ amount), which is all `admit` reads:
    an organization with no closed cap costs one dict lookup per call."""

    __slots__ = ("all", "closed", "customer", "environment", "feature", "key", "org")

    def __init__(self) -> None:
        self.all: list[Cap] = []
        self.closed: list[Cap] = []
        self.org: list[Cap] = []
        self.customer: dict[str, list[Cap]] = {}
        self.feature: dict[str, list[Cap]] = {}
        self.environment: dict[str, list[Cap]] = {}
        self.key: dict[int, list[Cap]] = {}

    def put(self, cap: Cap) -> None:
        self.all.append(cap)
        scope, value = cap.spec.scope, cap.spec.scope_value
        if scope == "organization":
            self.org.append(cap)
        elif scope == "customer":
            self.customer.setdefault(value, []).append(cap)
        elif scope == "feature":
            self.feature.setdefault(value, []).append(cap)
        elif scope == "environment":
            self.environment.setdefault(value, []).append(cap)
        elif scope == "api_key" and value.isdigit():
            self.key.setdefault(int(value), []).append(cap)
        cap.closed = False  # a fresh index: `update` puts it in `closed` if it is
        self.update(cap)

    def update(self, cap: Cap) -> None:
        """Keep `closed` in step with the cap's spend (after any change to it)."""
        closed = cap.spent >= cap.amount
        if closed != cap.closed:
            cap.closed = closed
            if closed:
                self.closed = [*self.closed, cap]
            else:
                self.closed = [c for c in self.closed if c is not cap]

    def matching(
        self, customer_id: str, feature: str, environment: str, key_id: int | None
    ) -> list[Cap]:
        out = self.org
        for table, value in (
            (self.customer, customer_id),
            (self.feature, feature),
            (self.environment, environment),
        ):
            if value:
                found = table.get(value)
                if found:
                    out = [*out, *found]
        if key_id is not None:
            found_key = self.key.get(key_id)
            if found_key:
                out = [*out, *found_key]
        return out


def covers(cap: Cap, tags, key_id: int | None) -> bool:
    """Is a call with these tags and key in the cap's scope?"""
    scope, value = cap.spec.scope, cap.spec.scope_value
    if scope == "organization":
        return True
    if scope == "customer":
        return tags.customer_id == value
    if scope == "feature":
        return tags.feature == value
    if scope == "environment":
        return tags.environment == value
    return scope == "api_key" and str(key_id) == value


# --- where the shared counters live ---------------------------------------------


class LocalStore:
    """The hashes in this process (no REDIS_URL: one process shares nothing)."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, int]] = {}
        self.expiry: dict[str, float] = {}

    async def exchange(
        self, pushes: list[tuple[str, dict[int, int], float]], reads: list[str], now: float
    ) -> list[dict[str, int]]:
        for key, slots, expire_at in pushes:
            fields = self.hashes.setdefault(key, {})
            for slot, units in slots.items():
                fields[str(slot)] = fields.get(str(slot), 0) + units
            self.expiry[key] = expire_at
        for key in [k for k, at in self.expiry.items() if at < now]:
            self.hashes.pop(key, None)
            self.expiry.pop(key, None)
        return [dict(self.hashes.get(key, {})) for key in reads]

    async def settle(self, key: str, base: int, watermark: int, expire_at: float) -> None:
        fields = self.hashes.setdefault(key, {})
        first = watermark // SLOT_SECONDS
        for name in [n for n in fields if n.isdigit() and int(n) < first]:
            del fields[name]
        fields["base"], fields["w"] = base, watermark
        self.expiry[key] = expire_at

    async def close(self) -> None:
        return None


class RedisStore:
    """The hashes in Redis, shared by every worker and host."""

    def __init__(self, url: str) -> None:
        self.redis = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)

    async def exchange(
        self, pushes: list[tuple[str, dict[int, int], float]], reads: list[str], now: float
    ) -> list[dict[str, int]]:
        pipe = self.redis.pipeline(transaction=False)
        for key, slots, expire_at in pushes:
            for slot, units in slots.items():
                pipe.hincrby(key, str(slot), units)
            pipe.expireat(key, int(expire_at))
        for key in reads:
            pipe.hgetall(key)
        results = await pipe.execute()
        return [_ints(found) for found in results[len(results) - len(reads) :]]

    async def settle(self, key: str, base: int, watermark: int, expire_at: float) -> None:
        first = watermark // SLOT_SECONDS
        names = await self.redis.hkeys(key)
        stale = [n for n in (_text(n) for n in names) if n.isdigit() and int(n) < first]
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"base": base, "w": watermark})
        if stale:
            pipe.hdel(key, *stale)
        pipe.expireat(key, int(expire_at))
        await pipe.execute()

    async def close(self) -> None:
        await self.redis.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ints(found: dict) -> dict[str, int]:
    return {_text(name): int(value) for name, value in found.items()}


# --- the gate ---------------------------------------------------------------------


class BudgetGate:
    def __init__(
        self,
        *,
        run_sync: Callable[..., Awaitable[Any]],
        redis_url: str = "",
        sync_seconds: float = 0.05,
        reload_seconds: float = 5.0,
        reconcile_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.run_sync = run_sync
        self.store: LocalStore | RedisStore = RedisStore(redis_url) if redis_url else LocalStore()
        self.sync_seconds = sync_seconds
        self.reload_seconds = reload_seconds
        self.reconcile_seconds = reconcile_seconds
        self.clock = clock
        self.caps: dict[int, Cap] = {}  # by budget id
        self.by_org: dict[int, OrgCaps] = {}
        self.store_down = False
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._warning = Every()
        self._refusals: dict[int, tuple[tuple[int, int], Refusal]] = {}

    # --- the hot path -----------------------------------------------------------

    def admit(self, call) -> Refusal | None:
        caps = self.by_org.get(call.identity.organization_id)
        if caps is None or not caps.closed:
            return None
        now = self.clock()
        for cap in caps.closed:
            if now >= cap.end:  # a new period: open at once, counters cleared
                cap.roll(now)
                caps.update(cap)
                self._wake.set()
            elif covers(cap, call.tags, call.identity.key_id):
                return self.refusal(cap, now)
        return None

    def withdraw(self, call) -> None:
        """Nothing to undo: `admit` reserves nothing (costs are known only when calls finish)."""

    def observe(self, record) -> None:
        caps = self.by_org.get(record.organization_id)
        if caps is None or not record.cost:  # no cap, free, or unpriced (counted apart)
            return
        units = to_units(record.cost)
        at = record.created_at.timestamp()
        slot = int(at // SLOT_SECONDS)
        now = self.clock()
        near = False
        for cap in caps.matching(
            record.customer_id, record.feature, record.environment, record.api_key_id
        ):
            if now >= cap.end:
                cap.roll(now)
            if cap.start <= at < cap.end:
                pending = cap.pending  # Cap.add, inlined: this loop is per call
                pending[slot] = pending.get(slot, 0) + units
                cap.pending_total += units
                spent = cap.base + cap.recent + cap.pending_total + cap.flying
                if spent >= cap.amount:
                    if not cap.closed:
                        caps.update(cap)
                    near = True
                elif spent * 10 >= cap.amount * 9:  # NEAR_FRACTION
                    near = True
        if near:
            self._wake.set()  # share it now, not at the next tick

    def refusal(self, cap: Cap, now: float) -> Refusal:
        """The cap's 429, built at most once a second (a client hammering a
        closed budget costs a cache hit)."""
        key = (int(now), cap.spent)
        cached = self._refusals.get(cap.spec.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        refusal = self._build_refusal(cap, now)
        self._refusals[cap.spec.id] = (key, refusal)
        return refusal

    def _build_refusal(self, cap: Cap, now: float) -> Refusal:
        spec = cap.spec
        reset_local = datetime.fromtimestamp(cap.end, cap.zone)
        reset_utc = datetime.fromtimestamp(cap.end, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        what = "the whole organization"
        if spec.scope != "organization":
            what = f"{spec.scope.replace('_', ' ')} {spec.scope_value!r}"
        spent = from_units(cap.spent).quantize(Decimal("0.01"))
        message = (
            f'AiSpendTrack budget "{spec.name}" is exhausted: ${spent} of '
            f"${spec.amount.normalize():f} spent this {spec.period} for {what}. It resets at "
            f"{reset_local:%Y-%m-%d %H:%M} {cap.zone.key} ({reset_utc}); an owner or admin "
            "can raise or pause it in Settings → Budgets."
        )
        return Refusal(
            code="budget_exceeded",
            message=message,
            retry_after=max(1, math.ceil(cap.end - now)),
            should_retry=False,
            headers=(("x-aispendtrack-budget", str(spec.id)), ("x-aispendtrack-reset", reset_utc)),
            reason="budget",
        )

    # --- background -------------------------------------------------------------

    async def start(self) -> None:
        await self.reload()
        await self.reconcile(only_new=False)
        self._tasks = [
            asyncio.create_task(self._sync_loop(), name="budgets-sync"),
            asyncio.create_task(self._ledger_loop(), name="budgets-ledger"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        with contextlib.suppress(RedisError, OSError):
            await self.sync()  # hand this worker's last spend to the others
        await self.store.close()

    async def reload(self) -> None:
        """Load the active hard caps of every organization (a budget created,
        changed or paused takes effect within `reload_seconds`)."""
        try:
            specs = await self.run_sync(_specs)
        except Exception:
            logger.warning("could not load budgets; keeping the previous ones", exc_info=True)
            return
        self.apply(specs)

    def apply(self, specs: Iterable[CapSpec]) -> None:
        now = self.clock()
        caps: dict[int, Cap] = {}
        for spec in specs:
            old = self.caps.get(spec.id)
            if old is not None and _same_counting(old.spec, spec):
                old.spec, old.amount = spec, to_units(spec.amount)  # name or amount changed
                caps[spec.id] = old
            else:
                caps[spec.id] = Cap(spec, now)
        by_org: dict[int, OrgCaps] = {}
        for cap in caps.values():
            by_org.setdefault(cap.spec.organization_id, OrgCaps()).put(cap)
        self.caps, self.by_org = caps, by_org  # swapped whole: admit never sees a half-built index

    async def sync(self) -> None:
        """Push this worker's pending spend and read everyone's, one round trip."""
        caps = list(self.caps.values())
        if not caps:
            return
        now = self.clock()
        pushes = []
        pushed: list[tuple[Cap, str, dict[int, int], int]] = []
        for cap in caps:
            if now >= cap.end:
                cap.roll(now)
                self._update(cap)
            if cap.pending:
                slots, cap.pending = cap.pending, {}
                moved = sum(slots.values())
                cap.pending_total -= moved
                cap.flying += moved
                pushes.append((cap.key, slots, cap.end + KEY_SLACK_SECONDS))
                pushed.append((cap, cap.key, slots, moved))
        keys = [cap.key for cap in caps]
        try:
            results = await self.store.exchange(pushes, keys, now)
        except BaseException:
            for cap, key, slots, moved in pushed:  # not stored: keep it for the next round
                if cap.key != key:  # rolled over meanwhile: that period is gone
                    continue
                cap.flying -= moved
                for slot, units in slots.items():
                    cap.pending[slot] = cap.pending.get(slot, 0) + units
                cap.pending_total += moved
            raise
        for cap, key, _slots, moved in pushed:
            if cap.key == key:
                cap.flying -= moved
        for cap, key, fields in zip(caps, keys, results, strict=True):
            if cap.key == key:  # not rolled over meanwhile
                cap.absorb(fields)
            self._update(cap)

    async def reconcile(self, *, only_new: bool) -> None:
        """Set each cap's base from the ledger (hourly rollups) up to its watermark."""
        now = self.clock()
        watermark_hour = int((now - LEDGER_LAG) // 3600 * 3600)
        for cap in list(self.caps.values()):
            if only_new and cap.reconciled:
                continue
            if now >= cap.end:
                cap.roll(now)
                self._update(cap)
            key = cap.key
            watermark = max(watermark_hour, int(cap.start))
            spec = cap.spec
            try:
                spend = await self.run_sync(_ledger_spend, spec, cap.start, watermark)
                await self.store.settle(
                    key, to_units(spend), watermark, cap.end + KEY_SLACK_SECONDS
                )
            except Exception:
                logger.warning("budget %s not reconciled with the ledger", spec.id, exc_info=True)
                continue
            cap.reconciled = True
        self._wake.set()

    async def _sync_loop(self) -> None:
        while True:
            # With no hard cap anywhere there is nothing to push or read: wait
            # for a wake-up (each reconcile round, after a reload, sets one)
            # instead of ticking 20 times a second on an idle server.
            timeout = self.sync_seconds if self.caps else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            try:
                await self.sync()
            except (RedisError, OSError):
                self._store_failed()
            except Exception:
                logger.exception("budget sync failed")
            else:
                if self.store_down:
                    logger.warning("Redis is reachable again: budgets are shared again")
                self.store_down = False

    async def _ledger_loop(self) -> None:
        last_reload = last_reconcile = time.monotonic()
        while True:
            await asyncio.sleep(min(self.reload_seconds, self.reconcile_seconds, 1.0))
            if time.monotonic() - last_reload >= self.reload_seconds:
                last_reload = time.monotonic()
                await self.reload()
            full = time.monotonic() - last_reconcile >= self.reconcile_seconds
            if full:
                last_reconcile = time.monotonic()
            await self.reconcile(only_new=not full)

    def _update(self, cap: Cap) -> None:
        caps = self.by_org.get(cap.spec.organization_id)
        if caps is not None:
            caps.update(cap)

    def _store_failed(self) -> None:
        self.store_down = True
        if self._warning.due():
            logger.warning(
                "Redis unreachable: budgets are enforced on this worker's own view "
                "(the ledger and its own calls) until it returns"
            )


def _same_counting(old: CapSpec, new: CapSpec) -> bool:
    """Do the counters of `old` still hold for `new` (same calls, same periods)?"""
    return (old.scope, old.scope_value, old.period, old.timezone) == (
        new.scope,
        new.scope_value,
        new.period,
        new.timezone,
    )


def _specs() -> list[CapSpec]:
    close_old_connections()
    try:
        return block_budgets_all_orgs()
    finally:
        close_old_connections()


def _ledger_spend(spec: CapSpec, start: float, watermark: int) -> Decimal:
    if watermark <= start:
        return Decimal(0)
    close_old_connections()
    try:
        return budget_ledger_spend(
            organization_id=spec.organization_id,
            scope=spec.scope,
            scope_value=spec.scope_value,
            since=datetime.fromtimestamp(start, UTC),
            until=datetime.fromtimestamp(watermark, UTC),
        )
    finally:
        close_old_connections()
