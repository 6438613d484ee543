"""The read API's common parts: tenant resolution, parameter checking, JSON shapes.

Every view reads `request.organization` (set by the session middleware or by
accounts.authentication.ApiKeyAuthentication) and passes it to a selector;
nothing here queries a model directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.http import QueryDict
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.params import (
    ALL_FILTER_PARAMS,
    DATE_PARAMS,
    EVENT_FILTER_PARAMS,
    FILTER_PARAMS,
    MAX_DATE,
    MAX_LATENCY_MS,
    MAX_PROPERTY_FILTERS,
    MAX_PROPERTY_NAME,
    MIN_DATE,
    ParamError,
    UsageFilters,
    parse_filters,
    parse_period,
    reject_unknown,
    untagged_label,
)
from analytics.periods import Period
from analytics.selectors import Totals

ROLLUP_FILTERS = tuple(name for name in FILTER_PARAMS if name != "trace_id")
# Aggregates take every filter but the trace (the filter bar's set, issue 12).
AGGREGATE_FILTERS = (*ROLLUP_FILTERS, *EVENT_FILTER_PARAMS)
# The cost API our users migrate from spells dates in camelCase; both spellings work.
PARAM_ALIASES = {"startDate": "start_date", "endDate": "end_date"}


def canonical_params(params: QueryDict) -> QueryDict:
    """Query parameters with aliases renamed; both spellings at once must agree.
    A QueryDict still: `property` may repeat."""
    out = params.copy()
    for alias, name in PARAM_ALIASES.items():
        if alias not in out:
            continue
        value = out.pop(alias)[-1]
        if name in out and out[name] != value:
            raise ParamError(f"{alias} and {name} are the same parameter; send one of them.")
        out[name] = value
    return out


def money_str(value: Decimal) -> str:
    """A cost as a plain decimal string ("0.0000000000", never "0E-10" or a float)."""
    return format(value, "f")


def totals_json(totals: Totals, *, key_name: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if key_name is not None:
        key = totals.key
        if key_name in ("customer_id", "feature"):
            key = untagged_label(key)
        out[key_name] = key.isoformat() if isinstance(key, date) else key
    out.update(
        cost=money_str(totals.cost),
        calls=totals.calls,
        tokens=totals.tokens,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        unpriced_calls=totals.unpriced_calls,
        error_calls=totals.error_calls,
        avg_cost_per_call=money_str(totals.avg_cost_per_call),
    )
    return out


def record_json(record: dict[str, Any]) -> dict[str, Any]:
    """One ledger record in the read API's field names (issue 3); money as a string."""
    out = {name: value for name, value in record.items() if not name.startswith("_")}
    out["cost"] = money_str(record["cost"])
    created: datetime = record["created_at"]
    out["created_at"] = created.isoformat().replace("+00:00", "Z")
    return out


def period_json(period: Period) -> dict[str, Any]:
    return {
        "start_date": period.start.isoformat(),
        "end_date": period.end.isoformat(),
        "timezone": period.zone.key,
    }


class OrgAPIView(APIView):
    """Base of the read API: rejects unknown parameters, turns ParamError into 400."""

    # Query parameters this endpoint understands (besides DRF's `format`).
    allowed_params: Iterable[str] = ()
    default_range = "month"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        allowed = [*self.allowed_params, "format"]
        allowed += [alias for alias, name in PARAM_ALIASES.items() if name in allowed]
        reject_unknown(request.query_params, allowed)
        self.params = canonical_params(request.query_params)

    def handle_exception(self, exc):
        if isinstance(exc, ParamError):
            return Response({"detail": str(exc)}, status=400)
        return super().handle_exception(exc)

    @property
    def organization(self):
        # Set on the Django request by the session middleware or by ApiKeyAuthentication.
        return getattr(self.request._request, "organization", None)

    def period(self) -> Period:
        return parse_period(self.organization, self.params, default=self.default_range)

    def optional_period(self) -> Period | None:
        """Record lists are unbounded unless a date is given."""
        if any(self.params.get(name) for name in DATE_PARAMS):
            return self.period()
        return None

    def filters(self, allowed: Iterable[str] = AGGREGATE_FILTERS) -> UsageFilters:
        return parse_filters(self.params, allowed=allowed)


# --- OpenAPI parameter docs ---------------------------------------------------

# Bounds stated in the schema so that clients (and the fuzzer in
# tests/analytics/test_api_fuzz.py) know them: dates within MIN_DATE..MAX_DATE,
# text without control characters, whole numbers within their ranges.
DATE_SCHEMA = {
    "type": "string",
    "format": "date",
    "pattern": r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
}
TEXT_SCHEMA = {"type": "string", "maxLength": 256, "pattern": r"^[^\x00-\x1f\x7f]*$"}


def int_schema(minimum: int, maximum: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


_DATE_HINTS = {
    "start_date": "Default: the first of this month.",
    "end_date": "Default: today. At most 400 days in a range.",
}
DATE_DOCS = [
    OpenApiParameter(
        name,
        DATE_SCHEMA,
        description=(
            f"Inclusive, ISO date ({MIN_DATE} to {MAX_DATE}), in the organization's "
            f"time zone. {_DATE_HINTS[name]}"
        ),
    )
    for name in DATE_PARAMS
] + [
    OpenApiParameter(alias, DATE_SCHEMA, description=f"Same as {name} (the seed API's spelling).")
    for alias, name in PARAM_ALIASES.items()
]
FILTER_DOCS = [
    OpenApiParameter(
        name,
        int_schema(1, 2**62) if name == "key_id" else TEXT_SCHEMA,
        description='Exact match. "(untagged)" selects calls without one.'
        if name in ("customer_id", "feature")
        else "Exact match.",
    )
    for name in ROLLUP_FILTERS
]
TRACE_DOC = OpenApiParameter("trace_id", TEXT_SCHEMA, description="Exact match.")
COST_SCHEMA = {"type": "string", "pattern": r"^[0-9]{1,10}(\.[0-9]{1,10})?$"}
PROPERTY_SCHEMA = {
    "type": "array",
    "maxItems": MAX_PROPERTY_FILTERS,
    "items": {
        "type": "string",
        "maxLength": 256,
        "pattern": rf"^[^\x00-\x1f\x7f:]{{1,{MAX_PROPERTY_NAME}}}:[^\x00-\x1f\x7f]*$",
    },
}
_BOUND = {"min": "at least", "max": "at most"}
EVENT_FILTER_DOCS = [
    OpenApiParameter(
        "property",
        PROPERTY_SCHEMA,
        explode=True,
        description="name:value of an x-property-<name> header the call carried, like "
        "plan:pro; repeat it and every one must match. Read from the calls, not rollups.",
    ),
    *(
        OpenApiParameter(
            f"cost_{end}",
            COST_SCHEMA,
            description=f"Calls that cost {_BOUND[end]} this many USD (inclusive, a decimal "
            "string). Read from the calls, not rollups.",
        )
        for end in ("min", "max")
    ),
    *(
        OpenApiParameter(
            f"latency_{end}",
            int_schema(0, MAX_LATENCY_MS),
            description=f"Calls that took {_BOUND[end]} this many milliseconds (inclusive). "
            "Read from the calls, not rollups.",
        )
        for end in ("min", "max")
    ),
]
# What every aggregate endpoint documents (and `AGGREGATE_FILTERS` accepts).
AGGREGATE_FILTER_DOCS = [*FILTER_DOCS, *EVENT_FILTER_DOCS]
assert [doc.name for doc in AGGREGATE_FILTER_DOCS] == list(AGGREGATE_FILTERS)  # noqa: S101
assert set(AGGREGATE_FILTERS) | {"trace_id"} == set(ALL_FILTER_PARAMS)  # noqa: S101
