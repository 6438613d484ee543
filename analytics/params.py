"""Query parameters shared by the REST API and the pages: dates, filters, limits.

Parsing never guesses: a bad date, an end before the start, a range over
MAX_RANGE_DAYS, an unknown status or (in the API) an unknown parameter raises
`ParamError` with a message that says what was wrong and how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

from analytics.models import Status
from analytics.periods import MAX_RANGE_DAYS, PRESETS, Period, org_today, org_zone, period_preset

DATE_PARAMS = ("start_date", "end_date")
# Dates outside these years are typos or probes; bounding them also keeps
# every derived date (previous period, end + 1 day) inside datetime's range.
MIN_DATE = date(2000, 1, 1)
MAX_DATE = date(2100, 12, 31)
FILTER_PARAMS = (
    "customer_id",
    "feature",
    "model",
    "provider",
    "status",
    "trace_id",
    "environment",
    "key_id",
)
# customer_id / feature "" means the call was not tagged; URLs and filters spell
# it "(untagged)" (an empty filter means "any"). A customer really named
# "(untagged)" would be merged with the untagged calls: an accepted edge.
UNTAGGED = "(untagged)"
UNTAGGABLE = ("customer_id", "feature")


def untagged_label(value: str) -> str:
    return value if value else UNTAGGED


def untagged_value(label: str) -> str:
    return "" if label == UNTAGGED else label


class ParamError(ValueError):
    """A query parameter is wrong; str(error) is the message for the user."""


@dataclass(frozen=True, slots=True)
class UsageFilters:
    """Equality filters on ledger dimensions; None means "any"."""

    customer_id: str | None = None
    feature: str | None = None
    model: str | None = None
    provider: str | None = None
    status: str | None = None
    trace_id: str | None = None
    environment: str | None = None
    key_id: int | None = None

    def lookup(self) -> dict[str, object]:
        """ORM lookups valid on UsageEvent and on HourlyRollup (trace_id: events only)."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out["api_key_id" if f.name == "key_id" else f.name] = value
        return out

    @property
    def needs_events(self) -> bool:
        """Rollups have no trace_id: a trace filter must read raw events."""
        return self.trace_id is not None

    def as_params(self) -> dict[str, str]:
        """Back to query parameters (for `next` links and export buttons)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = untagged_label(value) if f.name in UNTAGGABLE else str(value)
        return out


def reject_unknown(params: Mapping[str, str], allowed: Iterable[str]) -> None:
    allowed = set(allowed)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ParamError(
            f"Unknown parameter {', '.join(repr(name) for name in unknown)}; "
            f"this endpoint accepts: {', '.join(sorted(allowed))}."
        )


def _parse_date(params: Mapping[str, str], name: str) -> date | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ParamError(f"{name} must be an ISO date like 2026-11-01; got {raw!r}.") from None
    if not MIN_DATE <= day <= MAX_DATE:
        raise ParamError(
            f"{name} must be between {MIN_DATE} and {MAX_DATE}; got {raw!r}. "
            "Ask for dates this ledger can hold."
        )
    return day


def parse_period(organization, params: Mapping[str, str], *, default: str = "month") -> Period:
    """`start_date`/`end_date` (inclusive, org zone), else a `range` preset, else the default.

    Only `start_date`: up to today. Only `end_date`: from the first of that month.
    """
    start = _parse_date(params, "start_date")
    end = _parse_date(params, "end_date")
    zone = org_zone(organization)
    if start is None and end is None:
        preset = params.get("range") or default
        if preset not in PRESETS:
            raise ParamError(f"range must be one of {', '.join(PRESETS)}; got {preset!r}.")
        return period_preset(organization, preset)
    if start is None and end is not None:
        start = end.replace(day=1)
    assert start is not None
    if end is None:
        end = max(start, org_today(organization))
    if end < start:
        raise ParamError(f"end_date ({end}) is before start_date ({start}); swap them.")
    days = (end - start).days + 1
    if days > MAX_RANGE_DAYS:
        raise ParamError(
            f"The range {start} to {end} is {days} days; "
            f"ask for at most {MAX_RANGE_DAYS} days at a time."
        )
    return Period(start, end, zone)


def parse_filters(
    params: Mapping[str, str], *, allowed: Iterable[str] = FILTER_PARAMS
) -> UsageFilters:
    values: dict[str, Any] = {}
    for name in allowed:
        raw = (params.get(name) or "").strip()
        if not raw:
            continue  # absent or empty (a blank filter field): any
        if name == "status":
            if raw not in Status.values:
                raise ParamError(f"status must be one of {', '.join(Status.values)}; got {raw!r}.")
            values[name] = raw
        elif name == "key_id":
            values[name] = parse_int(params, name, default=0, minimum=1, maximum=2**62)
        elif name in UNTAGGABLE:
            values[name] = untagged_value(raw)
        else:
            values[name] = raw
    return UsageFilters(**values)


def parse_int(
    params: Mapping[str, str], name: str, *, default: int, minimum: int, maximum: int
) -> int:
    raw = (params.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ParamError(f"{name} must be a whole number; got {raw!r}.") from None
    if not minimum <= value <= maximum:
        raise ParamError(f"{name} must be between {minimum} and {maximum}; got {value}.")
    return value


def parse_choice(
    params: Mapping[str, str], name: str, choices: Iterable[str], *, default: str
) -> str:
    choices = tuple(choices)
    raw = params.get(name) or default
    if raw not in choices:
        raise ParamError(f"{name} must be one of {', '.join(choices)}; got {raw!r}.")
    return raw
