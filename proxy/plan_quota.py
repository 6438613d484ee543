"""Leases: how the plan-limit gate's workers share one limit exactly.

Each organization's limit in each window has one shared counter in Redis,
its lease counter: the calls all workers together have reserved in that
window. A worker admits a call only from the allowance it holds, and gets
allowance from LEASE_SCRIPT, which grants atomically and never past the
limit. So, with Redis up, the calls admitted by all workers together never
exceed the limit, however fast they come (the cross-worker overshoot of the
old "count here, share every 100 ms" design grew with the call rate).

A worker asks for more off the request path while it still holds some: a
sync that sees a quota run below two sync periods' worth of its recent calls
asks for three periods' worth, and a call that takes the allowance down to one
period's worth wakes the sync at once. Only a call that finds no allowance
left waits, for one Redis round trip (calls waiting on one quota share it).

Chunks shrink with the quota: a grant is at most the remaining quota over
2 × the live workers (at least 1), so near the limit workers take one call at
a time and what one holds unused is small. A worker gives back allowance it
has not touched for RETURN_IDLE_SECONDS (RETURN_SCRIPT), so a quiet worker
never sits on quota the busy ones need; an organization that pauses that long
pays one round trip on its next call. What is never given back (a killed
worker) expires with the window's key: lost only for the rest of that window.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from billing import windows

HOUR, MONTH = "h", "m"
TTL = {HOUR: 2 * 3600, MONTH: 40 * 86400}
# A call that finds no allowance asks for this many when the worker has no
# recent rate for the quota yet (first call of a window, or after a pause).
FIRST_WANT = 8
# Without Redis the process is the only worker: it grants itself chunks of
# this size, so the monthly floor (the ledger's count) is applied every few calls.
LOCAL_CHUNK = 64
RETURN_IDLE_SECONDS = 1.0

# KEYS[1] the lease counter; ARGV: limit, floor (calls known to the ledger: the
# counter never counts fewer), want, live workers, ttl. Returns {granted, counter}.
LEASE_SCRIPT = """
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local total = math.max(stored, tonumber(ARGV[2]))
local limit = tonumber(ARGV[1])
local n = 0
if total < limit then
  local share = math.max(1, math.floor((limit - total) / (2 * tonumber(ARGV[4]))))
  n = math.min(tonumber(ARGV[3]), share, limit - total)
end
if total + n ~= stored then
  redis.call('SET', KEYS[1], total + n, 'EX', ARGV[5])
end
return {n, total + n}
"""

# KEYS[1] the lease counter; ARGV[1] calls given back. Returns the counter. A
# counter that is gone (a new Redis, an expired window) stays gone: never negative.
RETURN_SCRIPT = """
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
if stored <= 0 then return 0 end
local left = math.max(0, stored - tonumber(ARGV[1]))
redis.call('SET', KEYS[1], left, 'KEEPTTL')
return left
"""


class Quota:
    """One organization's quota of one kind (HOUR, MONTH) in one window, as
    this worker holds it.

    allowance  calls this worker may still admit (leased, not yet used);
    unpushed   calls admitted since the last sync (pushed to the shared
               admitted-calls counter the pages read; also the recent rate);
    outage     calls admitted without allowance while Redis was down, added to
               the lease counter when it returns (the limit resumes where it stood);
    returning  allowance to give back at the next sync (a plan change);
    granted    the lease counter as last read (all workers' leases);
    exhausted  the last answer said the window's quota is all leased: refuse
               without asking until a sync sees some given back.
    """

    __slots__ = (
        "active_at",
        "allowance",
        "exhausted",
        "granted",
        "keys",
        "kind",
        "lease",
        "low",
        "org",
        "outage",
        "rate",
        "returning",
        "unpushed",
        "waiting",
        "window",
    )

    def __init__(self, org: int, kind: str, window: int) -> None:
        self.org, self.kind, self.window = org, kind, window
        self.allowance = self.unpushed = self.outage = self.returning = 0
        self.granted = 0
        self.exhausted = False
        # Calls admitted in the last sync period; the hot path wakes the sync
        # once the allowance is down to `low` (one period's worth).
        self.rate = self.low = 0
        self.active_at = 0.0  # time.monotonic() of the last sync that saw calls
        self.lease: asyncio.Future | None = None  # the lease request in flight
        self.waiting = 0  # calls waiting on it
        self.keys: tuple[str, str] | None = None  # (admitted counter, lease counter)

    def redis_keys(self) -> tuple[str, str]:
        if self.keys is None:
            if self.kind == HOUR:
                start = datetime.fromtimestamp(self.window * 3600, UTC)
                self.keys = (
                    windows.hour_counter_key(self.org, start),
                    windows.hour_lease_key(self.org, start),
                )
            else:
                year, month = divmod(self.window - 1, 12)
                start = datetime(year, month + 1, 1, tzinfo=UTC)
                self.keys = (
                    windows.month_counter_key(self.org, start),
                    windows.month_lease_key(self.org, start),
                )
        return self.keys

    def grant_local(self, limit: int, floor: int) -> None:
        """Without Redis: LEASE_SCRIPT's rule on this process's own counter."""
        total = max(self.granted, floor)
        n = min(LOCAL_CHUNK, limit - total)
        if n > 0:
            self.granted = total + n
            self.allowance += n

    def granted_reply(self, limit: int, n: int, total: int) -> None:
        self.allowance += n
        self.granted = total
        self.exhausted = total >= limit

    # What a sync's replies tell (each takes the replies of its own commands).

    def lease_reply(self, limit: int, replies: list) -> None:
        n, total = replies[0]
        self.granted_reply(limit, int(n), int(total))

    def pushed(self, used: int, replies: list) -> None:
        self.unpushed -= used

    def outage_pushed(self, outage: int, limit: int, replies: list) -> None:
        self.outage -= outage
        self.granted = int(replies[0])
        self.exhausted = self.granted >= limit

    def looked(self, limit: int, floor: int, replies: list) -> None:
        """The lease counter as read (or as left by a return)."""
        self.granted = max(int(replies[0] or 0), floor)
        self.exhausted = self.granted >= limit

    def release(self, *, local: bool) -> None:
        """Give up the allowance held (the limit changed): leased under the old
        limit, it must not be spent under the new one."""
        if local:
            self.granted -= self.allowance
        else:
            self.returning += self.allowance
        self.allowance = 0
        self.exhausted = False


class Windows:
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
