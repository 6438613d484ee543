"""The windows plan limits count in, shared by the proxy's gate and the pages.

Hourly requests count in fixed UTC clock hours (14:00:00–14:59:59): a window
every worker and host agrees on without coordination, whose reset is one
moment that `Retry-After` can name exactly. A client can burst up to twice
the limit across an hour boundary; a sliding window would avoid that at the
cost of a sorted set per organization in Redis, not worth it for a limit
meant to stop runaway loops. Monthly calls count in calendar months (UTC),
resetting at 00:00 UTC on the 1st.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def hour_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return hour_start(now).replace(day=1, hour=0)


def next_hour(now: datetime) -> datetime:
    return hour_start(now) + timedelta(hours=1)


def next_month(now: datetime) -> datetime:
    start = month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


def hour_counter_key(organization_id: int, now: datetime) -> str:
    return f"ast:plan:h:{organization_id}:{hour_start(now):%Y%m%d%H}"


def month_counter_key(organization_id: int, now: datetime) -> str:
    return f"ast:plan:m:{organization_id}:{month_start(now):%Y%m}"


# The counters above count calls the proxy admitted (what the pages show); the
# lease counters below count what the proxy's workers reserved from a limit
# (proxy/plan_quota.py): never above the limit, and ahead of the calls.


def hour_lease_key(organization_id: int, now: datetime) -> str:
    return f"ast:plan:hl:{organization_id}:{hour_start(now):%Y%m%d%H}"


def month_lease_key(organization_id: int, now: datetime) -> str:
    return f"ast:plan:ml:{organization_id}:{month_start(now):%Y%m}"
