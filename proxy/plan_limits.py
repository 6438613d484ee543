"""The plan-limit gate: hourly proxy requests and monthly tracked calls.

Registered in `ProxyRuntime.gates` when AISPENDTRACK_BILLING is on. `admit`
and `observe` touch only this object's dicts (no I/O). Windows are fixed UTC
clock hours and calendar months (billing.windows says why).

Counting:
- hourly: every admitted request counts in its hour;
- monthly: every recorded call (`observe`) counts in its month, and the
  estimate is never below the hourly rollups' sum for the month (read from
  the database every DB_COUNTS_SECONDS), so a restart or a new worker starts
  from what the ledger already holds.

With REDIS_URL the counts are shared: a background task pushes this
worker's increments (INCRBY) and reads everyone's totals in one pipelined
round trip every SYNC_SECONDS, and at once when an organization nears its
limit, so the overshoot across workers is the calls admitted during one
round trip. Without Redis (the embedded default) the counts are this
process's own. If Redis is unreachable, calls pass (fail open), a warning is
logged at most once a minute, and the increments kept meanwhile are pushed
when it returns, so the limit resumes where it stood.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.db import close_old_connections
from redis.exceptions import RedisError

from billing import windows
from billing.selectors import OrgLimits, calls_this_month_all_orgs, plan_limits_all_orgs
from config.throttle import Every
from proxy.gates import Refusal

logger = logging.getLogger("aispendtrack.plan_limits")

SYNC_SECONDS = 0.1
# A subscription change reaches the proxy within LIMITS_SECONDS (only changed
# rows are read); a full reload every FULL_LIMITS_SECONDS picks up edits of a
# plan's own limits and time-based changes (grace or paid period ending).
LIMITS_SECONDS = 2.0
FULL_LIMITS_SECONDS = 60.0
DB_COUNTS_SECONDS = 15.0
# Sync at once (not at the next tick) when an organization is this close to a limit.
NEAR_FRACTION = 0.9
HOUR_TTL, MONTH_TTL = 2 * 3600, 40 * 86400


class _Count:
    """One organization's count in one window: `shared` is the last total read
    from Redis (0 without Redis), `pending` what this worker added since."""

    __slots__ = ("pending", "shared", "window")

    def __init__(self, window: int) -> None:
        self.window, self.shared, self.pending = window, 0, 0

    @property
    def total(self) -> int:
        return self.shared + self.pending


class _Windows:
    """The current hour and month as epoch seconds, recomputed only when passed."""

    __slots__ = ("hour", "hour_end", "month", "month_end")

    def __init__(self) -> None:
        self.hour = self.month = -1
        self.hour_end = self.month_end = 0.0

    def advance(self, now: float) -> None:
        if self.hour_end - 3600 <= now < self.hour_end:
            return
        moment = datetime.fromtimestamp(now, UTC)
        self.hour = int(now // 3600)
        self.hour_end = windows.next_hour(moment).timestamp()
        start = windows.month_start(moment)
        self.month = start.year * 12 + start.month
        self.month_end = windows.next_month(moment).timestamp()


class PlanLimitGate:
    def __init__(self, *, redis_url: str = "", clock: Callable[[], float] = time.time) -> None:
        self.redis_url = redis_url
        self.clock = clock
        self.limits: dict[int, OrgLimits] = {}
        self.default: OrgLimits | None = None  # organizations with no subscription: Free
        self.db_month: dict[int, int] = {}
        self.hourly: dict[int, _Count] = {}
        self.monthly: dict[int, _Count] = {}
        self.windows = _Windows()
        self.redis_down = False
        self._redis: aioredis.Redis | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._warning = Every()
        self._limits_read_at: datetime | None = None
        self._refusals: dict[tuple[int, str], tuple[int, int, Refusal]] = {}

    # --- the hot path -----------------------------------------------------------

    def admit(self, call) -> Refusal | None:
        org = call.identity.organization_id
        limits = self.limits.get(org, self.default)
        if limits is None:
            return None
        now = self.clock()
        w = self.windows
        w.advance(now)
        if self.redis_down:  # fail open; still counted, pushed when Redis returns
            self._count(self.hourly, org, w.hour).pending += 1
            return None
        monthly_limit = limits.monthly_calls
        if monthly_limit is not None:
            month = self._count(self.monthly, org, w.month)
            used = max(month.total, self.db_month.get(org, 0))
            if used >= monthly_limit:
                return self._refused(org, "m", limits, monthly_limit, now)
        hour = self._count(self.hourly, org, w.hour)
        hourly_limit = limits.hourly_requests
        if hourly_limit is not None:
            if hour.total >= hourly_limit:
                return self._refused(org, "h", limits, hourly_limit, now)
            if hour.total >= hourly_limit * NEAR_FRACTION:
                self._wake.set()
        hour.pending += 1
        return None

    def observe(self, record) -> None:
        org = record.organization_id
        limits = self.limits.get(org, self.default)
        if limits is None or limits.monthly_calls is None:
            return
        w = self.windows
        w.advance(self.clock())
        month = self._count(self.monthly, org, w.month)
        month.pending += 1
        if month.total >= limits.monthly_calls * NEAR_FRACTION:
            self._wake.set()

    @staticmethod
    def _count(table: dict[int, _Count], org: int, window: int) -> _Count:
        count = table.get(org)
        if count is None or count.window != window:
            count = table[org] = _Count(window)
        return count

    def _refused(self, org: int, kind: str, limits: OrgLimits, limit: int, now: float) -> Refusal:
        """The refusal, built once per organization, kind and second: a client
        hammering a closed limit costs a dict lookup. Resets fall on whole
        seconds, so Retry-After is the same for every call within one."""
        second = int(now)
        cached = self._refusals.get((org, kind))
        if cached is not None and cached[0] == second and cached[1] == limit:
            return cached[2]
        build = self._refuse_monthly if kind == "m" else self._refuse_hourly
        refusal = build(limits, limit, now)
        self._refusals[(org, kind)] = (second, limit, refusal)
        return refusal

    def _refuse_hourly(self, limits: OrgLimits, limit: int, now: float) -> Refusal:
        reset = self.windows.hour_end
        retry_after = max(1, math.ceil(reset - now))
        at = datetime.fromtimestamp(reset, UTC)
        message = (
            f"Plan limit reached: your organization's {limits.plan_name} plan allows "
            f"{limit:,} proxy requests per hour and this hour's are used up. Requests are "
            f"accepted again at {at:%H:%M} UTC (in {retry_after} s). For a higher limit, "
            "upgrade your plan in AiSpendTrack under Settings → Billing."
        )
        return self._refusal(message, retry_after, limit, reset, should_retry=True)

    def _refuse_monthly(self, limits: OrgLimits, limit: int, now: float) -> Refusal:
        reset = self.windows.month_end
        retry_after = max(1, math.ceil(reset - now))
        at = datetime.fromtimestamp(reset, UTC)
        message = (
            f"Plan limit reached: your organization's {limits.plan_name} plan includes "
            f"{limit:,} tracked calls per calendar month and this month's are used up. "
            f"Calls are accepted again on {at:%b} {at.day} at 00:00 UTC. To keep going now, "
            "upgrade to Pro (unlimited calls) in AiSpendTrack under Settings → Billing."
        )
        return self._refusal(message, retry_after, limit, reset, should_retry=False)

    @staticmethod
    def _refusal(
        message: str, retry_after: int, limit: int, reset: float, *, should_retry: bool
    ) -> Refusal:
        reset_at = datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return Refusal(
            code="plan_limit_exceeded",
            message=message,
            retry_after=retry_after,
            should_retry=should_retry,
            headers=(
                ("x-aispendtrack-limit", str(limit)),
                ("x-aispendtrack-remaining", "0"),
                ("x-aispendtrack-reset", reset_at),
            ),
            reason="plan",
        )

    # --- background: limits, database counts, Redis ----------------------------

    async def start(self) -> None:
        self.windows.advance(self.clock())
        await self._load_limits()
        await self._load_db_counts()
        if self.redis_url:
            self._redis = aioredis.Redis.from_url(
                self.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
            self._tasks.append(asyncio.create_task(self._sync_loop(), name="plan-limits-sync"))
        self._tasks.append(asyncio.create_task(self._refresh_loop(), name="plan-limits-load"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.sync()  # hand this worker's last increments to the others
            await self._redis.aclose()
            self._redis = None

    async def _load_limits(self, *, full: bool = True) -> None:
        started = datetime.now(UTC)
        # Overlap the previous read: a row saved while it ran is read again.
        since = None if full or self._limits_read_at is None else self._limits_read_at
        try:
            table, self.default = await sync_to_async(_limits_table)(since)
            self.limits = table if since is None else {**self.limits, **table}
            self._limits_read_at = started - timedelta(seconds=5)
        except Exception:
            logger.warning("could not load plan limits; keeping the previous ones", exc_info=True)

    async def _load_db_counts(self) -> None:
        try:
            self.db_month = await sync_to_async(_month_counts)()
        except Exception:
            logger.warning("could not count this month's calls; keeping the previous counts")

    async def _refresh_loop(self) -> None:
        last_counts = last_full = time.monotonic()
        while True:
            await asyncio.sleep(LIMITS_SECONDS)
            full = time.monotonic() - last_full >= FULL_LIMITS_SECONDS
            if full:
                last_full = time.monotonic()
            await self._load_limits(full=full)
            if time.monotonic() - last_counts >= DB_COUNTS_SECONDS:
                last_counts = time.monotonic()
                await self._load_db_counts()

    async def _sync_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SYNC_SECONDS)
            self._wake.clear()
            try:
                await self.sync()
            except (RedisError, OSError):
                self._redis_failed()
            else:
                if self.redis_down:
                    logger.warning("Redis is reachable again: plan limits apply again")
                self.redis_down = False

    def _redis_failed(self) -> None:
        self.redis_down = True
        if self._warning.due():
            logger.warning(
                "Redis unreachable: plan limits are not enforced (calls pass) until it returns"
            )

    async def sync(self) -> None:
        """Push pending increments and read every active organization's totals,
        in one pipelined round trip."""
        assert self._redis is not None
        clock = self.clock()
        w = self.windows
        w.advance(clock)
        now = datetime.fromtimestamp(clock, UTC)
        plan: list[tuple[_Count, int]] = []  # (count, pushed) per command, in order
        pipe = self._redis.pipeline(transaction=False)
        for table, key_of, ttl, window in (
            (self.hourly, windows.hour_counter_key, HOUR_TTL, w.hour),
            (self.monthly, windows.month_counter_key, MONTH_TTL, w.month),
        ):
            for org, count in list(table.items()):
                if count.window != window:  # a past hour or month: nothing to enforce
                    del table[org]
                    continue
                key = key_of(org, now)
                pushed = count.pending
                if pushed:
                    pipe.incrby(key, pushed)
                    pipe.expire(key, ttl)
                    plan.append((count, pushed))
                else:
                    pipe.get(key)
                    plan.append((count, 0))
        if not plan:
            return
        results = await pipe.execute()
        values = iter(results)
        for count, pushed in plan:
            value = next(values)
            if pushed:
                next(values)  # EXPIRE's answer
                count.pending -= pushed
            count.shared = int(value or 0)


def _limits_table(since: datetime | None) -> tuple[dict[int, OrgLimits], OrgLimits]:
    close_old_connections()
    try:
        return plan_limits_all_orgs(changed_since=since)
    finally:
        close_old_connections()


def _month_counts() -> dict[int, int]:
    close_old_connections()
    try:
        return calls_this_month_all_orgs()
    finally:
        close_old_connections()
