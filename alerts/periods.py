"""A budget's current period: a calendar day, ISO week (Monday first) or month
of the organization's zone, as an `analytics.periods.Period` of local dates.

Its UTC bounds come from the local midnights, so a period in a zone that
changes to or from daylight saving time is 23 or 25 hours (a day) long and
the next one starts exactly at the local midnight.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from analytics.periods import Period


def period_bounds(kind: str, today: date) -> tuple[date, date]:
    """(first, last) local date of the day / ISO week / month containing `today`."""
    if kind == "day":
        return today, today
    if kind == "week":
        monday = today - timedelta(days=today.weekday())
        return monday, monday + timedelta(days=6)
    if kind == "month":
        last = calendar.monthrange(today.year, today.month)[1]
        return today.replace(day=1), today.replace(day=last)
    raise ValueError(f"unknown budget period {kind!r}")


def budget_period(kind: str, zone: ZoneInfo, now: datetime) -> Period:
    """The period of kind `kind` that contains the instant `now`, in `zone`."""
    first, last = period_bounds(kind, now.astimezone(zone).date())
    return Period(first, last, zone)
