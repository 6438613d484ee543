"""Query parameters shared by the REST API and the pages: dates, filters, limits.

Parsing never guesses: a bad date, an end before the start, a range over
MAX_RANGE_DAYS, an unknown status, a malformed property or range, or (in the
API) an unknown parameter raises `ParamError` with a message that says what was
wrong and how to fix it. Pages and API read the same names (issue 12's filter bar).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from analytics.models import COST_DIGITS, COST_PLACES, Status
from analytics.periods import MAX_RANGE_DAYS, PRESETS, Period, org_today, org_zone, period_preset

if TYPE_CHECKING:
    from analytics.selectors.matched import MatchedEvents

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
# Filters no rollup can answer: read from the events (analytics.selectors._common).
# `property` repeats: property=plan:pro&property=region:eu (all must match).
EVENT_FILTER_PARAMS = ("property", "cost_min", "cost_max", "latency_min", "latency_max")
ALL_FILTER_PARAMS = (*FILTER_PARAMS, *EVENT_FILTER_PARAMS)
# UsageFilters' fields for them (the repeated `property` gathers into `properties`).
EVENT_FIELDS = ("properties", *EVENT_FILTER_PARAMS[1:])
# x-property-<name> as the proxy accepts it (proxy/headers.py): at most 20 a
# call, names of 1 to 64 characters; values are stored up to 1,000.
MAX_PROPERTY_FILTERS = 20
MAX_PROPERTY_NAME = 64
MAX_PROPERTY_VALUE = 1000
# The largest cost a ledger row holds (numeric(20, 10)) and latency (a 32-bit int).
MAX_COST = Decimal(10) ** (COST_DIGITS - COST_PLACES)
MAX_LATENCY_MS = 2**31 - 1
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
    """Filters on the ledger; None (or no properties) means "any".

    The equality filters but trace_id are rollup dimensions; trace_id,
    properties and the inclusive cost (USD) and latency (ms) ranges are only
    on the events (`needs_events`)."""

    customer_id: str | None = None
    feature: str | None = None
    model: str | None = None
    provider: str | None = None
    status: str | None = None
    trace_id: str | None = None
    environment: str | None = None
    key_id: int | None = None
    properties: tuple[tuple[str, str], ...] = ()
    cost_min: Decimal | None = None
    cost_max: Decimal | None = None
    latency_min: int | None = None
    latency_max: int | None = None
    # Not a filter: where the events these filters match were copied for the
    # page being built, if they were (analytics.selectors.matched). Filters
    # compare, hash and read back as query parameters without it.
    matched: MatchedEvents | None = field(default=None, compare=False, repr=False)

    def lookup(self) -> dict[str, object]:
        """Equality lookups valid on UsageEvent and on HourlyRollup (trace_id:
        events only); the event-only conditions are `analytics.selectors._common.event_q`."""
        out: dict[str, object] = {}
        for name in FILTER_PARAMS:
            value = getattr(self, name)
            if value is not None:
                out["api_key_id" if name == "key_id" else name] = value
        return out

    @property
    def needs_events(self) -> bool:
        """Rollups have no trace_id, properties, or per-call cost and latency:
        such filters must read raw events."""
        return any(getattr(self, name) not in (None, ()) for name in ("trace_id", *EVENT_FIELDS))

    @property
    def active(self) -> bool:
        return any(
            getattr(self, f.name) not in (None, ()) for f in fields(self) if f.name != "matched"
        )

    def as_query(self) -> list[tuple[str, str]]:
        """Back to query parameters, in ALL_FILTER_PARAMS order (links, exports)."""
        out: list[tuple[str, str]] = []
        for name in FILTER_PARAMS:
            value = getattr(self, name)
            if value is not None:
                out.append((name, untagged_label(value) if name in UNTAGGABLE else str(value)))
        out += [("property", f"{key}:{value}") for key, value in self.properties]
        for name in EVENT_FIELDS[1:]:
            value = getattr(self, name)
            if value is not None:
                out.append((name, str(value)))
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
    params: Mapping[str, str], *, allowed: Iterable[str] = ALL_FILTER_PARAMS
) -> UsageFilters:
    """The filters among `allowed` that `params` sets (a QueryDict or a dict;
    `property` may repeat in a QueryDict). Blank values mean "any"."""
    values: dict[str, Any] = {}
    for name in allowed:
        if name == "property":
            values["properties"] = parse_properties(_all_values(params, name))
            continue
        raw = (params.get(name) or "").strip()
        if not raw:
            continue  # absent or empty (a blank filter field): any
        if name in ("cost_min", "cost_max"):
            values[name] = parse_cost(name, raw)
        elif name in ("latency_min", "latency_max"):
            values[name] = parse_int(params, name, default=0, minimum=0, maximum=MAX_LATENCY_MS)
        elif name == "status":
            if raw not in Status.values:
                raise ParamError(f"status must be one of {', '.join(Status.values)}; got {raw!r}.")
            values[name] = raw
        elif name == "key_id":
            values[name] = parse_int(params, name, default=0, minimum=1, maximum=2**62)
        elif name in UNTAGGABLE:
            values[name] = untagged_value(raw)
        else:
            values[name] = raw
    for low, high, unit in (("cost_min", "cost_max", "USD"), ("latency_min", "latency_max", "ms")):
        bottom, top = values.get(low), values.get(high)
        if bottom is not None and top is not None and bottom > top:
            raise ParamError(f"{low} ({bottom} {unit}) is above {high} ({top} {unit}); swap them.")
    return UsageFilters(**values)


def _all_values(params: Mapping[str, str], name: str) -> list[str]:
    getlist = getattr(params, "getlist", None)
    values = getlist(name) if getlist is not None else [params.get(name)]
    return [value.strip() for value in values if value and value.strip()]


def parse_properties(raw_values: list[str]) -> tuple[tuple[str, str], ...]:
    """`name:value` pairs (the value may hold colons), sorted, duplicates merged;
    one name given two values matches nothing, as a call has one value a name."""
    if len(raw_values) > MAX_PROPERTY_FILTERS:
        raise ParamError(
            f"{len(raw_values)} property filters given; a call carries at most "
            f"{MAX_PROPERTY_FILTERS} properties, so send at most that many."
        )
    pairs = set()
    for raw in raw_values:
        name, colon, value = raw.partition(":")
        name = name.strip()
        if not colon or not 1 <= len(name) <= MAX_PROPERTY_NAME:
            raise ParamError(
                f"property must be name:value with a name of 1 to {MAX_PROPERTY_NAME} "
                f"characters (the part after x-property-), like plan:pro; got {raw!r}."
            )
        if len(value) > MAX_PROPERTY_VALUE:
            raise ParamError(
                f"property {name!r}: the value is {len(value)} characters; "
                f"stored values have at most {MAX_PROPERTY_VALUE}."
            )
        pairs.add((name, value))
    return tuple(sorted(pairs))


def parse_cost(name: str, raw: str) -> Decimal:
    """A cost bound in USD: a plain decimal from 0 up to the ledger's largest cost."""
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or not 0 <= value < MAX_COST:
        raise ParamError(
            f"{name} must be an amount in USD from 0 to below {MAX_COST:,} like 0.05; got {raw!r}."
        )
    return value


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
