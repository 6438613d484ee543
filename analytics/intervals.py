"""Interval maths shared by readers and the fold: which stored intervals
(day, ISO week, month) hold a local day, and which hold a period.

Pure functions of dates; neither the write side nor the selectors own them.
"""

from __future__ import annotations

from datetime import date, timedelta

from analytics.models import Span
from analytics.periods import Period, org_zone


def spans_of(day: date) -> tuple[tuple[str, date], ...]:
    """The day, ISO week and month a local day is counted in."""
    return (
        (Span.DAY, day),
        (Span.WEEK, day - timedelta(days=day.weekday())),
        (Span.MONTH, day.replace(day=1)),
    )


def span_last_day(span: str, start: date) -> date:
    if span == Span.DAY:
        return start
    if span == Span.WEEK:
        return start + timedelta(days=6)
    following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def period_spans(period: Period, *, today: date) -> list[tuple[str, date]]:
    """Stored intervals that together hold exactly the period's days: whole
    months and ISO weeks where they fit, single days at the edges.

    An interval may run past the period's end when that end is today or later:
    no call has been recorded after today, so those days hold nothing.
    """
    horizon = period.end if period.end < today else date.max
    spans: list[tuple[str, date]] = []
    day = period.start
    while day <= period.end:
        for span in (Span.MONTH, Span.WEEK):
            start = dict(spans_of(day))[span]
            if start == day and span_last_day(span, start) <= horizon:
                spans.append((span, start))
                day = span_last_day(span, start) + timedelta(days=1)
                break
        else:
            spans.append((Span.DAY, day))
            day += timedelta(days=1)
    return spans


def daily_ready(organization, period: Period | None = None) -> bool:
    """Do the daily tables answer in this period's zone (the org's zone by default)?

    They are keyed in `Organization.rollup_timezone`; after a zone change they
    are re-keyed by the fold (analytics.fold), and until then readers use the
    hourly tables, so answers never mix zones."""
    zone = period.zone if period is not None else org_zone(organization)
    return organization.rollup_timezone == zone.key
