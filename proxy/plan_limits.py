"""The plan-limit gate: hourly proxy requests and monthly tracked calls.

Registered in `ProxyRuntime.gates` when AISPENDTRACK_BILLING is on. Windows
are fixed UTC clock hours and calendar months (billing.windows says why).

Counting:
- hourly: every request the gate admits counts in its hour;
- monthly: every call the gate admits is reserved in its month at admission
  (a call a later gate refuses is given back, `withdraw`), and the count is
  never below the hourly rollups' sum for the month (read from the database
  every DB_COUNTS_SECONDS), so a restart or a new worker starts from what the
  ledger already holds and calls recorded without passing the gate (a 400 for
  a bad tag) count too.

A call is admitted from allowance this worker leased (proxy.plan_quota):
with REDIS_URL, from the organization's lease counter shared by all workers
and hosts, granted atomically and never past the limit, so together they
admit at most the limit, whatever the call rate; without Redis (the embedded
default) from this process's own counter, exact within the process. The
common call (allowance in hand) is a few integer operations, no I/O; a call
that finds none waits for one Redis round trip (`admit` then returns an
awaitable). If Redis is unreachable, calls pass (fail open), a warning is
logged at most once a minute, and the calls admitted meanwhile are added to
the counters when it returns, so the limit resumes where it stood.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.db import close_old_connections
from redis.exceptions import RedisError

from billing.selectors import OrgLimits, calls_this_month_all_orgs, plan_limits_all_orgs
from config.throttle import Every
from proxy.gates import Refusal
from proxy.plan_quota import (
    FIRST_WANT,
    HOUR,
    LEASE_SCRIPT,
    MONTH,
    RETURN_IDLE_SECONDS,
    RETURN_SCRIPT,
    TTL,
    Quota,
    Windows,
)
from proxy.plan_refusals import hourly_refusal, monthly_refusal

logger = logging.getLogger("aispendtrack.plan_limits")

SYNC_SECONDS = 0.1
# A subscription change reaches the proxy within LIMITS_SECONDS (only changed
# rows are read); a full reload every FULL_LIMITS_SECONDS picks up edits of a
# plan's own limits and time-based changes (grace or paid period ending).
LIMITS_SECONDS = 2.0
FULL_LIMITS_SECONDS = 60.0
DB_COUNTS_SECONDS = 15.0
# A call waiting for a lease waits this long at most, then passes (Redis is
# taken as unreachable, as a failed sync would).
LEASE_WAIT_SECONDS = 1.0
# Live workers (for the chunk size) are those that synced within WORKER_SECONDS.
WORKERS_KEY = "ast:plan:workers"
WORKER_SECONDS = 5.0

Verdict = Refusal | Awaitable[Refusal | None] | None


class PlanLimitGate:
    def __init__(self, *, redis_url: str = "", clock: Callable[[], float] = time.time) -> None:
        self.redis_url = redis_url
        self.clock = clock
        self.limits: dict[int, OrgLimits] = {}
        self.default: OrgLimits | None = None  # organizations with no subscription: Free
        self.db_month: dict[int, int] = {}
        self.hourly: dict[int, Quota] = {}
        self.monthly: dict[int, Quota] = {}
        self.windows = Windows()
        self.redis_down = False
        self.worker_id = os.urandom(8).hex()
        self.workers = 1  # live workers sharing Redis, as last counted
        self._redis: aioredis.Redis | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._warning = Every()
        self._limits_read_at: datetime | None = None
        self._refusals: dict[tuple[int, str], tuple[int, int, Refusal]] = {}

    # --- the hot path -----------------------------------------------------------

    def admit(self, call) -> Verdict:
        """None (admitted), a Refusal, or, when this worker holds no allowance
        for a limited quota, an awaitable of either (one Redis round trip)."""
        org = call.identity.organization_id
        limits = self.limits.get(org, self.default)
        if limits is None:
            return None
        w = self.windows
        w.advance(self.clock())
        month = None
        if limits.monthly_calls is not None:
            month = self._quota(self.monthly, org, MONTH, w.month)
            if month.allowance <= 0:
                return self._admit_short(org, limits)
        hour = self._quota(self.hourly, org, HOUR, w.hour)
        if hour.allowance <= 0 and limits.hourly_requests is not None:
            return self._admit_short(org, limits)
        self._take(hour, month, limits)
        return None

    def withdraw(self, call) -> None:
        """A later gate refused a call this gate admitted: it is no tracked
        call, so its month's reservation is given back (the hour keeps it:
        hourly limits count requests)."""
        limits = self.limits.get(call.identity.organization_id, self.default)
        if limits is None or limits.monthly_calls is None:
            return
        month = self.monthly.get(call.identity.organization_id)
        if month is not None and month.window == self.windows.month and month.unpushed > 0:
            month.unpushed -= 1
            month.allowance += 1

    def observe(self, record) -> None:
        """Nothing to count: monthly calls are reserved at admission, and
        calls recorded without passing the gate reach the count through the
        ledger's floor (`db_month`)."""

    @staticmethod
    def _quota(table: dict[int, Quota], org: int, kind: str, window: int) -> Quota:
        quota = table.get(org)
        if quota is None or quota.window != window:
            quota = table[org] = Quota(org, kind, window)
        return quota

    def _take(self, hour: Quota, month: Quota | None, limits: OrgLimits) -> None:
        """Admit: spend a unit of each limited quota's allowance (while Redis
        is down, a quota without allowance counts the call as an outage call)."""
        hour.unpushed += 1
        if limits.hourly_requests is not None:
            if hour.allowance > 0:
                hour.allowance -= 1
                if hour.allowance <= hour.low:
                    self._wake.set()
            else:
                hour.outage += 1
        if month is not None:
            month.unpushed += 1
            if month.allowance > 0:
                month.allowance -= 1
                if month.allowance <= month.low:
                    self._wake.set()
            else:
                month.outage += 1

    def _admit_short(self, org: int, limits: OrgLimits) -> Verdict:
        verdict = self._try(org, limits)
        if isinstance(verdict, list):
            return self._admit_waiting(org, verdict)
        return verdict

    def _try(self, org: int, limits: OrgLimits) -> Refusal | list[Quota] | None:
        """Admit or refuse now if this worker can tell; else the quotas that
        need a lease first."""
        now = self.clock()
        w = self.windows
        w.advance(now)
        month = None
        if limits.monthly_calls is not None:
            month = self._quota(self.monthly, org, MONTH, w.month)
        hour = self._quota(self.hourly, org, HOUR, w.hour)
        short: list[Quota] = []
        for quota, limit in ((month, limits.monthly_calls), (hour, limits.hourly_requests)):
            if quota is None or limit is None or quota.allowance > 0:
                continue
            if self._redis is None:
                quota.grant_local(limit, self._floor(quota))
                if quota.allowance > 0:
                    continue
            elif self.redis_down:
                continue  # fail open: counted as an outage call
            elif not quota.exhausted:
                short.append(quota)
                continue
            return self._refused(org, quota.kind, limits, limit, now)
        if short:
            return short
        self._take(hour, month, limits)
        return None

    async def _admit_waiting(self, org: int, short: list[Quota]) -> Refusal | None:
        """Wait for leases of the `short` quotas (one round trip, shared with
        the other calls waiting on them), then decide. Each round either gets
        allowance or learns the quota is exhausted, so this ends."""
        while True:
            for quota in short:
                quota.waiting += 1
            try:
                async with asyncio.timeout(LEASE_WAIT_SECONDS):
                    await asyncio.shield(self._lease(short))
            except TimeoutError:
                self._redis_failed()
            finally:
                for quota in short:
                    quota.waiting -= 1
            limits = self.limits.get(org, self.default)
            if limits is None:
                return None
            verdict = self._try(org, limits)
            if not isinstance(verdict, list):
                return verdict
            short = verdict

    def _floor(self, quota: Quota) -> int:
        return self.db_month.get(quota.org, 0) if quota.kind == MONTH else 0

    def _limit_of(self, quota: Quota) -> int | None:
        limits = self.limits.get(quota.org, self.default)
        if limits is None:
            return None
        return limits.hourly_requests if quota.kind == HOUR else limits.monthly_calls

    def _refused(self, org: int, kind: str, limits: OrgLimits, limit: int, now: float) -> Refusal:
        """The refusal, built once per organization, kind and second: a client
        hammering a closed limit costs a dict lookup. Resets fall on whole
        seconds, so Retry-After is the same for every call within one."""
        second = int(now)
        cached = self._refusals.get((org, kind))
        if cached is not None and cached[0] == second and cached[1] == limit:
            return cached[2]
        if kind == MONTH:
            refusal = monthly_refusal(limits, limit, now, self.windows.month_end)
        else:
            refusal = hourly_refusal(limits, limit, now, self.windows.hour_end)
        self._refusals[(org, kind)] = (second, limit, refusal)
        return refusal

    # --- leases ---------------------------------------------------------------

    def _lease(self, quotas: list[Quota]) -> Awaitable:
        """The lease requests in flight for `quotas`, starting one for those
        with none."""
        ask = [quota for quota in quotas if quota.lease is None]
        if ask:
            task = asyncio.get_running_loop().create_task(self._ask(ask))
            for quota in ask:
                quota.lease = task
        return asyncio.gather(*{quota.lease for quota in quotas if quota.lease is not None})

    async def _ask(self, quotas: list[Quota]) -> None:
        """One round trip: a lease for each quota, as much as its waiting calls
        and its recent rate want (the script caps it)."""
        try:
            assert self._redis is not None
            pipe = self._redis.pipeline(transaction=False)
            asked: list[tuple[Quota, int]] = []
            for quota in quotas:
                limit = self._limit_of(quota)
                if limit is None:
                    continue
                want = max(FIRST_WANT, quota.waiting + 3 * quota.rate)
                self._queue_lease(pipe, quota, limit, want)
                asked.append((quota, limit))
            if asked:
                replies = await pipe.execute()
                for (quota, limit), (n, total) in zip(asked, replies, strict=True):
                    quota.granted_reply(limit, int(n), int(total))
        except (RedisError, OSError):
            self._redis_failed()
        finally:
            for quota in quotas:
                quota.lease = None

    def _queue_lease(self, pipe, quota: Quota, limit: int, want: int) -> None:
        _, lease_key = quota.redis_keys()
        floor = self._floor(quota)
        pipe.eval(LEASE_SCRIPT, 1, lease_key, limit, floor, want, self.workers, TTL[quota.kind])

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
            # Hand this worker's last counts to the others and give its allowance back.
            for table in (self.hourly, self.monthly):
                for quota in table.values():
                    quota.release(local=False)
            with contextlib.suppress(RedisError, OSError):
                await self.sync()
                await self._redis.zrem(WORKERS_KEY, self.worker_id)
            await self._redis.aclose()
            self._redis = None

    async def _load_limits(self, *, full: bool = True) -> None:
        started = datetime.now(UTC)
        # Overlap the previous read: a row saved while it ran is read again.
        since = None if full or self._limits_read_at is None else self._limits_read_at
        try:
            table, default = await sync_to_async(_limits_table)(since)
            before, before_default = self.limits, self.default
            self.limits = table if since is None else {**self.limits, **table}
            self.default = default
            self._limits_changed(before, before_default)
            self._limits_read_at = started - timedelta(seconds=5)
        except Exception:
            logger.warning("could not load plan limits; keeping the previous ones", exc_info=True)

    def _limits_changed(self, before: dict[int, OrgLimits], before_default) -> None:
        """Allowance leased under a limit that changed is given up (returned at
        the next sync), so the new limit applies from the next call."""
        for table in (self.hourly, self.monthly):
            for org, quota in table.items():
                old = before.get(org, before_default)
                if old != self.limits.get(org, self.default):
                    quota.release(local=self._redis is None)

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
        """One pipelined round trip: this worker's heartbeat and the live
        workers' count, the calls admitted since the last sync (the shared
        counters the pages read), leases for quotas running low, allowance
        given back, outage calls, and a look at exhausted quotas."""
        assert self._redis is not None
        now = self.clock()
        w = self.windows
        w.advance(now)
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(WORKERS_KEY, {self.worker_id: now})
        pipe.zremrangebyscore(WORKERS_KEY, "-inf", now - WORKER_SECONDS)
        pipe.zcard(WORKERS_KEY)
        steps: list[tuple[int, Callable[[list], None]]] = []  # (replies, apply) per quota step
        mono = time.monotonic()
        for table, window in ((self.hourly, w.hour), (self.monthly, w.month)):
            for org, quota in list(table.items()):
                if quota.window != window:  # a past hour or month: its keys expire
                    del table[org]
                    continue
                self._plan(pipe, quota, mono, steps)
        replies = await pipe.execute()
        self.workers = max(1, int(replies[2]))
        answers = iter(replies[3:])
        for count, apply in steps:
            apply([next(answers) for _ in range(count)])

    def _plan(self, pipe, quota: Quota, mono: float, steps: list) -> None:
        """Queue one quota's part of a sync."""
        counter_key, lease_key = quota.redis_keys()
        ttl = TTL[quota.kind]
        used = quota.unpushed
        quota.rate = quota.low = used
        if used:
            quota.active_at = mono
            pipe.incrby(counter_key, used)
            pipe.expire(counter_key, ttl)
            steps.append((2, partial(quota.pushed, used)))
        limit = self._limit_of(quota)
        if limit is None:
            return
        if quota.outage:
            pipe.incrby(lease_key, quota.outage)
            pipe.expire(lease_key, ttl)
            steps.append((2, partial(quota.outage_pushed, quota.outage, limit)))
        give, quota.returning = quota.returning, 0
        if quota.allowance > 0 and mono - quota.active_at >= RETURN_IDLE_SECONDS:
            give += quota.allowance  # idle: let the busy workers have it
            quota.allowance = 0
        if give:  # lost if this sync fails: never spent twice
            pipe.eval(RETURN_SCRIPT, 1, lease_key, give)
            steps.append((1, partial(quota.looked, limit, 0)))
        elif quota.exhausted:
            pipe.get(lease_key)
            steps.append((1, partial(quota.looked, limit, self._floor(quota))))
        elif used and quota.lease is None and quota.allowance < 2 * used:
            self._queue_lease(pipe, quota, limit, 3 * used - quota.allowance)
            steps.append((1, partial(quota.lease_reply, limit)))


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
