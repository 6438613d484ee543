"""UsageRecord: what the proxy hands the ledger for one call.

A plain dataclass (no ORM) so the proxy can build it on the event loop for
microseconds and hand it to the ledger writer as one JSON line (proxy.handoff).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from operator import attrgetter, itemgetter, le
from typing import Any

from pricing.usage import Usage


@dataclass(slots=True)
class UsageRecord:
    request_id: str
    organization_id: int
    api_key_id: int | None
    created_at: datetime  # aware, UTC: when the call started
    provider: str
    endpoint: str
    status: str  # analytics.models.Status value
    model: str = ""
    response_model: str = ""
    customer_id: str = ""
    feature: str = ""
    trace_id: str = ""
    environment: str = ""
    properties: dict[str, str] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    cost: Decimal | None = None  # None: no price matched (priced=false)
    http_status: int | None = None
    latency_ms: int = 0
    ttfb_ms: int | None = None
    streamed: bool = False
    upstream_request_id: str = ""
    # Some number was out of its column's range and was clamped (record_sanitize).
    clamped: bool = False
    # The SANITIZE_VERSION of the record_sanitize that made it storable; 0: none.
    # Not part of what a record says (equality ignores it).
    sanitized: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (for the hand-off queue); `from_json` inverts it exactly.

        Field by field rather than `dataclasses.asdict` (which deep-copies):
        the proxy calls this on its event loop for every call, ~10× faster.
        """
        data = {name: getattr(self, name) for name in _PLAIN_FIELDS}
        data["created_at"] = self.created_at.isoformat()
        data["cost"] = None if self.cost is None else str(self.cost)
        data["properties"] = dict(self.properties)
        data["usage"] = {name: getattr(self.usage, name) for name in Usage.__slots__}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UsageRecord:
        data = dict(data)
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        data["cost"] = None if data.get("cost") is None else Decimal(data["cost"])
        data["usage"] = _construct(Usage, _usage_values, data.get("usage") or {})
        record = _construct(cls, _record_values, data)
        if record.sanitized == SANITIZE_VERSION:
            return record  # this version's record_sanitize made it storable already
        # A record of an older version may be unsanitized (or sanitized by
        # older rules): make it storable.
        return record_sanitize(record)


# The fields `to_json` copies as they are (the others need converting).
_CONVERTED = {"created_at", "cost", "properties", "usage"}
_PLAIN_FIELDS = tuple(f.name for f in fields(UsageRecord) if f.name not in _CONVERTED)
_RECORD_FIELDS = tuple(f.name for f in fields(UsageRecord))
_record_values = (len(_RECORD_FIELDS), itemgetter(*_RECORD_FIELDS))
_usage_values = (len(Usage.__slots__), itemgetter(*Usage.__slots__))


def _construct(kind: Any, picker: tuple[int, itemgetter], data: dict[str, Any]) -> Any:
    """`kind(**data)`, positionally when `data` holds exactly `kind`'s fields.

    The ledger writer builds a record per hand-off line: matching 23 keyword
    arguments took ~5 µs of a record's ~13, positional arguments ~1. A dict
    with a field missing (an older version's line) or one too many takes the
    keyword path, which fills defaults and refuses unknown names as before.
    """
    width, values = picker
    if len(data) == width:
        try:
            return kind(*values(data))
        except KeyError:
            pass
    return kind(**data)


# --- Sanitizing: a record the database can always take -------------------------
# PostgreSQL refuses NUL in text and jsonb, Python's encoder refuses lone
# surrogates, varchar(n) refuses longer strings and bigint refuses 10**20. One
# such record used to fail its whole mixed-tenant batch, so every record is
# made storable where it is built (proxy.calls.call_record, spool replay).

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Per-call ceilings. Tokens stay far below bigint's 9.2e18 so that hourly and
# daily sums of clamped calls cannot overflow either (9 million calls a bucket).
TOKEN_CEILING = 10**12
INT_CEILING = 2**31 - 1  # PositiveIntegerField (latency_ms, ttfb_ms)
HTTP_STATUS_CEILING = 32767  # PositiveSmallIntegerField
COST_CEILING = Decimal(10) ** 10 - Decimal(1).scaleb(-10)  # DecimalField(20, 10)
PROPERTY_VALUE_LIMIT = 1000
# Marks a record record_sanitize made storable (`UsageRecord.sanitized`), so
# the ledger writer does not sanitize a proxy's line a second time (~25 % of
# the writer's CPU a line). Raise it whenever a rule below changes: lines
# marked with an older number are sanitized again by the new rules.
SANITIZE_VERSION = 1
# The property that marks a clamped record in the ledger (its value names the fields).
CLAMPED_PROPERTY = "aispendtrack_clamped"
# Column limits of the text fields a record carries (UsageEvent's max_length).
TEXT_LIMITS = {
    "request_id": 40,
    "provider": 64,
    "endpoint": 200,
    "status": 16,
    "model": 200,
    "response_model": 200,
    "customer_id": 256,
    "feature": 256,
    "trace_id": 256,
    "environment": 256,
    "upstream_request_id": 200,
}


def clean_text(value: Any, limit: int) -> str:
    """`value` as text the database takes: no control characters, no lone
    surrogates, at most `limit` characters."""
    if not isinstance(value, str):
        value = "" if value is None else str(value)
    if not (value.isascii() and value.isprintable()):
        value = _SURROGATE.sub("\ufffd", _CONTROL.sub("", value))
    return value[:limit]


_usage_counts = attrgetter(*Usage.__slots__)
_texts = attrgetter(*TEXT_LIMITS)
_TEXT_ITEMS = tuple(TEXT_LIMITS.items())
_TEXT_LIMIT_VALUES = tuple(TEXT_LIMITS.values())
# Texts no longer in all than the smallest of the roomy limits (200) meet
# every roomy limit; then only the tight ones (request_id, provider, status)
# are checked one by one: ~0.2 µs a record instead of ~0.7 for all eleven.
_ROOMY = min(limit for limit in _TEXT_LIMIT_VALUES if limit >= 200)
_TIGHT = tuple((i, limit) for i, limit in enumerate(_TEXT_LIMIT_VALUES) if limit < _ROOMY)


def usage_clamp(usage: Usage) -> list[str]:
    """Clamp each token count into 0..TOKEN_CEILING; returns the fields clamped."""
    counts = _usage_counts(usage)
    if min(counts) >= 0 and max(counts) <= TOKEN_CEILING:
        return []  # the usual case: no per-field work
    clamped = []
    for name, value in zip(Usage.__slots__, counts, strict=True):
        fixed = min(max(value, 0), TOKEN_CEILING) if type(value) is int else 0
        if fixed != value:
            setattr(usage, name, fixed)
            clamped.append(name)
    return clamped


def _clamp_int(value: Any, ceiling: int, *, nullable: bool) -> int | None:
    if value is None and nullable:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        return None if nullable else 0
    return min(max(value, 0), ceiling)


def _texts_clean(record: UsageRecord) -> bool:
    """True when every text field is already storable (one check for all of them)."""
    try:
        values = _texts(record)
        joined = "".join(values)
    except TypeError:  # a non-string somewhere
        return False
    if not (joined.isascii() and joined.isprintable()):
        return False
    if len(joined) <= _ROOMY:  # every roomy limit is met: check the tight ones
        for index, limit in _TIGHT:  # noqa: SIM110 (a loop: ~3× faster than all(genexpr))
            if len(values[index]) > limit:
                return False
        return True
    return all(map(le, map(len, values), _TEXT_LIMIT_VALUES))


def record_sanitize(record: UsageRecord, *, clamped: Sequence[str] = ()) -> UsageRecord:
    """Make `record` storable in place (and return it). Text is cleaned and
    cut to its column; integers and cost are clamped into their columns'
    ranges, and a clamped record is flagged (`clamped`, and the ledger
    property `aispendtrack_clamped` naming the fields). Idempotent; a few
    microseconds for an ordinary record (one check covers all its text)."""
    if not _texts_clean(record):
        for name, limit in _TEXT_ITEMS:
            setattr(record, name, clean_text(getattr(record, name), limit))
    if record.properties:
        flat = "".join(f"{key}{value}" for key, value in record.properties.items())
        if not (flat.isascii() and flat.isprintable()) or len(flat) > PROPERTY_VALUE_LIMIT:
            record.properties = {
                clean_text(key, 64): clean_text(value, PROPERTY_VALUE_LIMIT)
                for key, value in record.properties.items()
            }
    fields = [*clamped, *usage_clamp(record.usage)]
    latency, status, ttfb = record.latency_ms, record.http_status, record.ttfb_ms
    if not (
        type(latency) is int
        and 0 <= latency <= INT_CEILING
        and (status is None or (type(status) is int and 0 <= status <= HTTP_STATUS_CEILING))
        and (ttfb is None or (type(ttfb) is int and 0 <= ttfb <= INT_CEILING))
    ):
        for name, ceiling, nullable in (
            ("http_status", HTTP_STATUS_CEILING, True),
            ("latency_ms", INT_CEILING, False),
            ("ttfb_ms", INT_CEILING, True),
        ):
            value = getattr(record, name)
            fixed = _clamp_int(value, ceiling, nullable=nullable)
            if fixed != value:
                setattr(record, name, fixed)
                if value is not None and not (isinstance(value, int) and value < 0):
                    fields.append(name)
    cost = record.cost
    if cost is not None and not (0 <= cost <= COST_CEILING):
        if not cost.is_finite() or cost < 0:
            record.cost, fields = None, [*fields, "cost"]  # unknown: re-priced later
        else:
            record.cost, fields = COST_CEILING, [*fields, "cost"]
    if fields:
        record.clamped = True
        earlier = record.properties.get(CLAMPED_PROPERTY, "")
        names = set(fields) | set(filter(None, earlier.split(",")))
        record.properties = {**record.properties, CLAMPED_PROPERTY: ",".join(sorted(names))}
    record.sanitized = SANITIZE_VERSION
    return record
