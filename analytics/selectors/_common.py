"""Building blocks shared by the analytics selectors: exact cost sums, totals, rollup scopes."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import BigIntegerField, Func, Q, QuerySet, Sum

from analytics.models import COST_PLACES, HourlyCoarseRollup, HourlyRollup
from analytics.params import UsageFilters
from analytics.periods import Period

QUANTUM = Decimal(1).scaleb(-COST_PLACES)
ZERO = Decimal(0).quantize(QUANTUM)
_SCALE = 10**COST_PLACES

# Dimensions a breakdown may group by, and the rollup column of each.
DIMENSIONS = {
    "provider": "provider",
    "model": "model",
    "customer": "customer_id",
    "feature": "feature",
    "environment": "environment",
    "key": "api_key_id",
    "status": "status",
}


class _ScaledCost(Func):
    # SQLite keeps decimals as REAL, so SUM(cost) would add binary floats and
    # drift in the 10th place. Each stored value is exact to 10 places once
    # rounded, so summing round(cost * 10^10) as 64-bit integers is exact.
    template = f"CAST(ROUND(%(expressions)s * {_SCALE}) AS INTEGER)"
    output_field = BigIntegerField()


def cost_sum(column: str = "cost", *, where: Q | None = None) -> Sum:
    """SUM of a cost column, exact on every backend; read results with `money()`."""
    if connection.vendor == "sqlite":
        return Sum(_ScaledCost(column), output_field=BigIntegerField(), filter=where)
    return Sum(column, filter=where)


def money(value: Any) -> Decimal:
    """A cost as Decimal with COST_PLACES places, whatever `cost_sum` returned."""
    if value is None:
        return ZERO
    if isinstance(value, int):  # SQLite: scaled integer units
        return (Decimal(value) / _SCALE).quantize(QUANTUM)
    return Decimal(value).quantize(QUANTUM)


@dataclass(slots=True)
class Totals:
    """Sums over a set of calls. `key` names the group (model, date, ...) if any."""

    key: Any = None
    calls: int = 0
    unpriced_calls: int = 0
    streamed_calls: int = 0
    error_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal = field(default_factory=lambda: ZERO)
    latency_ms_sum: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def avg_cost_per_call(self) -> Decimal:
        return (self.cost / self.calls).quantize(QUANTUM) if self.calls else ZERO

    @property
    def avg_latency_ms(self) -> int:
        return round(self.latency_ms_sum / self.calls) if self.calls else 0

    def add(self, other: Totals) -> None:
        for name in (
            "calls",
            "unpriced_calls",
            "streamed_calls",
            "error_calls",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "reasoning_tokens",
            "cost",
            "latency_ms_sum",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))


TOTAL_FIELDS = (
    "calls",
    "unpriced_calls",
    "streamed_calls",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "latency_ms_sum",
)


def totals_annotations() -> dict[str, Any]:
    """Aggregates over HourlyRollup rows that fill a `Totals` (aliases `t_<name>`:
    an alias may not shadow a model field)."""
    out: dict[str, Any] = {f"t_{name}": Sum(name) for name in TOTAL_FIELDS}
    out["t_error_calls"] = Sum("calls", filter=~Q(status="success"))
    out["t_cost"] = cost_sum()
    return out


def totals_from_row(row: dict[str, Any], *, key: Any = None) -> Totals:
    totals = Totals(key=key, cost=money(row.get("t_cost")))
    for name in (*TOTAL_FIELDS, "error_calls"):
        setattr(totals, name, row.get(f"t_{name}") or 0)
    return totals


def rollup_model(*, by: str | None = None, filters: UsageFilters | None = None):
    """The smallest rollup table that can answer: the coarse one (no customer_id)
    unless the query groups or filters by customer."""
    if by == "customer" or (filters is not None and filters.customer_id is not None):
        return HourlyRollup
    return HourlyCoarseRollup


def rollups_in(
    *,
    organization,
    period: Period,
    filters: UsageFilters | None = None,
    by: str | None = None,
) -> QuerySet:
    """One organization's rollup rows whose UTC hour starts inside the period."""
    qs = rollup_model(by=by, filters=filters).objects.filter(
        organization=organization, hour__gte=period.start_utc, hour__lt=period.end_utc
    )
    if filters is not None:
        if filters.needs_events:
            raise ValueError("rollups have no trace_id; read events for trace filters")
        qs = qs.filter(**filters.lookup())
    return qs


def change_ratio(current: Decimal, previous: Decimal) -> Decimal | None:
    """(current - previous) / previous, or None when there is nothing to compare with."""
    if not previous:
        return None
    return ((current - previous) / previous).quantize(Decimal("0.0001"))
