"""Budget periods are calendar periods of the organization's zone, DST included."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from alerts.periods import budget_period

NY = ZoneInfo("America/New_York")


def test_day_across_spring_forward_is_23_hours():
    # 2026-03-08: New York springs forward at 02:00 EST → 03:00 EDT.
    period = budget_period("day", NY, datetime(2026, 3, 8, 12, tzinfo=UTC))
    assert (period.start, period.end) == (date(2026, 3, 8), date(2026, 3, 8))
    assert period.start_utc == datetime(2026, 3, 8, 5, tzinfo=UTC)  # midnight EST
    assert period.end_utc == datetime(2026, 3, 9, 4, tzinfo=UTC)  # midnight EDT
    assert (period.end_utc - period.start_utc).total_seconds() == 23 * 3600


def test_day_across_fall_back_is_25_hours():
    period = budget_period("day", NY, datetime(2026, 11, 1, 12, tzinfo=UTC))
    assert period.start_utc == datetime(2026, 11, 1, 4, tzinfo=UTC)
    assert period.end_utc == datetime(2026, 11, 2, 5, tzinfo=UTC)


def test_iso_week_starts_monday_in_local_time():
    # Sunday 2026-03-08 23:30 local = Monday 03:30 UTC: still Sunday's week locally.
    period = budget_period("week", NY, datetime(2026, 3, 9, 3, 30, tzinfo=UTC))
    assert (period.start, period.end) == (date(2026, 3, 2), date(2026, 3, 8))
    following = budget_period("week", NY, datetime(2026, 3, 9, 4, 0, tzinfo=UTC))
    assert following.start == date(2026, 3, 9) and following.start.isoweekday() == 1
    assert following.start_utc == period.end_utc


def test_month_in_local_time():
    tokyo = ZoneInfo("Asia/Tokyo")
    # 2026-02-28 15:00 UTC is already 1 March 00:00 in Tokyo.
    period = budget_period("month", tokyo, datetime(2026, 2, 28, 15, tzinfo=UTC))
    assert (period.start, period.end) == (date(2026, 3, 1), date(2026, 3, 31))
    assert period.start_utc == datetime(2026, 2, 28, 15, tzinfo=UTC)
    feb = budget_period("month", tokyo, datetime(2026, 2, 28, 14, 59, tzinfo=UTC))
    assert (feb.start, feb.end) == (date(2026, 2, 1), date(2026, 2, 28))
