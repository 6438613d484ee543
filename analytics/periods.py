"""Date ranges in an organization's time zone, and how they map onto UTC rollups.

The ledger and its hourly rollups are UTC. A user thinks in days of their own
zone (`Organization.timezone`), so a `Period` is a range of local dates,
inclusive at both ends, that converts to a half-open UTC interval
`[start_utc, end_utc)` between the two local midnights.

Rollup hours belong to the local day in which the hour *starts*. For zones on
whole-hour offsets (all but a handful) local midnight is a UTC hour boundary,
so this is exact, DST changes included (a local day then has 23 or 25 hours).
For :30/:45 zones (India, Nepal, parts of Australia, ...) up to 45 minutes at
each end of a day are counted on the neighbouring day: rollups cannot be split
inside an hour. Raw-event lists filter on the exact instants.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone

MAX_RANGE_DAYS = 400


def org_zone(organization) -> ZoneInfo:
    """The organization's zone; UTC if the stored name is unknown to this system."""
    try:
        return ZoneInfo(organization.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_midnight_utc(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant a local day starts (fold=0 picks the first of an ambiguous hour)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date  # inclusive
    zone: ZoneInfo

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def start_utc(self) -> datetime:
        return local_midnight_utc(self.start, self.zone)

    @property
    def end_utc(self) -> datetime:
        """Exclusive: the first instant after the period."""
        return local_midnight_utc(self.end + timedelta(days=1), self.zone)

    def previous(self) -> Period:
        """The equal-length period just before this one."""
        return Period(
            self.start - timedelta(days=self.days), self.start - timedelta(days=1), self.zone
        )

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range(self.days)]

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


def org_today(organization, *, now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(org_zone(organization)).date()


PRESETS = {
    "today": "Today",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "month": "This month",
    "last_month": "Last month",
}


def period_preset(organization, preset: str, *, now: datetime | None = None) -> Period:
    """A named range ending today (org zone). `month` is month-to-date."""
    zone = org_zone(organization)
    today = org_today(organization, now=now)
    if preset == "today":
        return Period(today, today, zone)
    if preset == "7d":
        return Period(today - timedelta(days=6), today, zone)
    if preset == "30d":
        return Period(today - timedelta(days=29), today, zone)
    if preset == "month":
        return Period(today.replace(day=1), today, zone)
    if preset == "last_month":
        last_day = today.replace(day=1) - timedelta(days=1)
        return Period(last_day.replace(day=1), last_day, zone)
    raise ValueError(f"unknown preset {preset!r}")
