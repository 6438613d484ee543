"""Building blocks shared by the analytics selectors: exact cost sums, totals, rollup scopes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import BigIntegerField, Count, F, Func, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce, TruncDate
from django.db.models.lookups import Exact

from analytics.intervals import daily_ready, period_spans
from analytics.models import (
    COST_PLACES,
    CUSTOMER_DIMENSIONS,
    PROPERTY_CUSTOMER_PREFIX,
    CustomerRollup,
    DailyCoarseRollup,
    DailyModelRollup,
    HourlyCoarseRollup,
    HourlyRollup,
    PropertyCustomerDailyRollup,
    PropertyCustomerHourlyRollup,
    PropertyDailyModelRollup,
    PropertyDailyRollup,
    PropertyHourlyRollup,
    PropertyKey,
    RollupDelta,
    Span,
    UsageEvent,
)
from analytics.params import UsageFilters
from analytics.periods import Period, org_today
from analytics.rollups import CUSTOMER

# The sums a Totals holds: CustomerRollup's counters, the narrowest table's.
CUSTOMER_COUNTERS = CUSTOMER.counters

QUANTUM = Decimal(1).scaleb(-COST_PLACES)
ZERO = Decimal(0).quantize(QUANTUM)
_SCALE = 10**COST_PLACES

# What DailyModelRollup keeps (analytics.models).
MODEL_DIMENSIONS = ("provider", "model", "feature")
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
        for name in CUSTOMER_COUNTERS:  # the sums a Totals holds
            setattr(self, name, getattr(self, name) + getattr(other, name))


# The counters summed as plain integers (cost and error calls have their own aggregates).
TOTAL_FIELDS = tuple(name for name in CUSTOMER_COUNTERS if name not in ("cost", "error_calls"))


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


def counted_errors_annotations() -> dict[str, Any]:
    """`totals_annotations` for tables without status that count error calls
    themselves (CustomerRollup, DailyModelRollup)."""
    out: dict[str, Any] = {f"t_{name}": Sum(name) for name in TOTAL_FIELDS}
    out["t_error_calls"] = Sum("error_calls")
    out["t_cost"] = cost_sum()
    return out


# Each Totals counter summed over raw events (the rollups keep these sums per bucket).
EVENT_SUMS: dict[str, Callable[[], Any]] = {
    "calls": lambda: Count("pk"),
    "unpriced_calls": lambda: Count("pk", filter=Q(priced=False)),
    "streamed_calls": lambda: Count("pk", filter=Q(streamed=True)),
    "input_tokens": lambda: Sum("input_tokens"),
    "output_tokens": lambda: Sum("output_tokens"),
    "cached_input_tokens": lambda: Sum("cached_input_tokens"),
    "reasoning_tokens": lambda: Sum("reasoning_tokens"),
    "latency_ms_sum": lambda: Sum("latency_ms"),
}
assert set(EVENT_SUMS) == set(TOTAL_FIELDS)  # noqa: S101 (a new counter needs its event sum)


def event_totals_annotations() -> dict[str, Any]:
    """`totals_annotations` over UsageEvent rows."""
    out = {f"t_{name}": aggregate() for name, aggregate in EVENT_SUMS.items()}
    out["t_error_calls"] = Count("pk", filter=~Q(status="success"))
    out["t_cost"] = cost_sum()
    return out


@dataclass(slots=True)
class Rows:
    """Rollup rows (or events) that answer one query: the table chosen, how to read them.

    `day` is the expression giving a row's local date (daily series);
    `columns` maps each dimension the rows can be grouped by to its column;
    `calls` sums calls; `instant` is the time column (hour-of-day questions);
    `scope`: CustomerRollup's (dimension, value) when the rows are every
    customer's of one split (the rankings' threshold and name paths).
    """

    qs: QuerySet
    day: Any
    columns: dict[str, str]
    annotations: Callable[[], dict[str, Any]]
    calls: Callable[[], Any] = lambda: Sum("calls")
    instant: str = "hour"
    scope: tuple[str, str] | None = None

    def column(self, by: str) -> str:
        return self.columns[by]


def event_q(filters: UsageFilters) -> Q:
    """The filters no rollup can answer, on UsageEvent: every property equal
    (a JSON containment on PostgreSQL, served by the GIN index
    ue_properties; a key lookup on SQLite), cost and latency within their
    inclusive bounds (indexes ue_org_cost, ue_org_latency)."""
    q = Q()
    if filters.properties:
        if connection.vendor == "postgresql":
            q &= Q(properties__contains=dict(filters.properties))
        else:
            for name, value in filters.properties:
                q &= Q(Exact(KeyTextTransform(name, "properties"), value))
    bounds = {
        "cost__gte": filters.cost_min,
        "cost__lte": filters.cost_max,
        "latency_ms__gte": filters.latency_min,
        "latency_ms__lte": filters.latency_max,
    }
    return q & Q(**{lookup: value for lookup, value in bounds.items() if value is not None})


def events_in(
    *, organization, period: Period | None = None, filters: UsageFilters | None = None
) -> QuerySet[UsageEvent]:
    """One organization's events, optionally inside a period (exact UTC instants)."""
    qs = UsageEvent.objects.filter(organization=organization)
    if period is not None:
        qs = qs.filter(created_at__gte=period.start_utc, created_at__lt=period.end_utc)
    if filters is not None:
        qs = qs.filter(event_q(filters), **filters.lookup())
    return qs


# Events keep "no key" as NULL; rollups and pages say 0.
EVENT_DIMENSIONS = {**DIMENSIONS, "key": "key_or_zero"}


def event_source(*, organization, period: Period, filters: UsageFilters | None) -> QuerySet:
    """The period's events that pass `filters`: the page's copy of them when
    it made one that holds the period (`filters.matched`:
    analytics.selectors.matched), else the ledger's (`events_in`). Either has
    the columns totals, breakdowns, daily series and latency samples read."""
    if filters is not None and filters.matched is not None:
        copy = filters.matched
        copied = copy.events_in(organization=organization, period=period, filters=filters)
        if copied is not None:
            return copied
    return events_in(organization=organization, period=period, filters=filters)


def event_rows(*, organization, period: Period, filters: UsageFilters) -> Rows:
    """The period's events that pass `filters`, read as rollup rows are: for
    filters no rollup can answer (`UsageFilters.needs_events`). Days are the
    local dates of the calls themselves."""
    qs = event_source(organization=organization, period=period, filters=filters)
    qs = qs.alias(key_or_zero=Coalesce("api_key_id", 0))
    return Rows(
        qs,
        TruncDate("created_at", tzinfo=period.zone),
        EVENT_DIMENSIONS,
        event_totals_annotations,
        calls=lambda: Count("pk"),
        instant="created_at",
    )


def _model_cut_answers(lookup: dict[str, object], by: str | None) -> bool:
    """Is it a question about providers, models and features only, which the
    daily tables' cut without environment, key and status (DailyModelRollup,
    PropertyDailyModelRollup) answers?"""
    return by in (None, *MODEL_DIMENSIONS) and set(lookup) <= set(MODEL_DIMENSIONS)


def rollup_rows(
    *,
    organization,
    period: Period,
    filters: UsageFilters | None = None,
    by: str | None = None,
    daily: bool = False,
    hourly: bool = False,
) -> Rows:
    """The smallest rollup rows that hold exactly the period (org-local days),
    or the events themselves when a filter needs them (`event_rows`).

    In order of preference: CustomerRollup intervals for questions about
    customers it can answer (`customer_scope`); DailyModelRollup for questions
    about providers, models and features only; DailyCoarseRollup for anything
    else without the customer dimension; the hourly tables otherwise, and whenever
    the daily tables are keyed in another zone (being rebuilt) or `hourly`
    (hour-of-day questions) is asked. `daily` asks for rows per local day.
    """
    if filters is not None and filters.needs_events:
        rows = property_rows(
            organization=organization,
            period=period,
            filters=filters,
            by=by,
            daily=daily,
            hourly=hourly,
        )
        if rows is not None:
            return rows
        return event_rows(organization=organization, period=period, filters=filters)
    lookup = filters.lookup() if filters is not None else {}
    ready = not hourly and daily_ready(organization, period)
    scope = customer_scope(lookup, by) if ready else None
    if scope is not None:
        dimension, value, customer_id = scope
        return customer_rows(
            organization=organization,
            period=period,
            dimension=dimension,
            value=value,
            customer_id=customer_id,
            daily=daily,
        )
    customer_level = by == "customer" or "customer_id" in lookup
    if ready and not customer_level:
        if _model_cut_answers(lookup, by):
            narrow = DailyModelRollup.objects.filter(
                organization=organization, day__gte=period.start, day__lte=period.end, **lookup
            )
            return Rows(narrow, F("day"), DIMENSIONS, counted_errors_annotations)
        days = DailyCoarseRollup.objects.filter(
            organization=organization, day__gte=period.start, day__lte=period.end, **lookup
        )
        return Rows(days, F("day"), DIMENSIONS, totals_annotations)
    model = HourlyRollup if customer_level else HourlyCoarseRollup
    hours = model.objects.filter(
        organization=organization, hour__gte=period.start_utc, hour__lt=period.end_utc, **lookup
    )
    return Rows(hours, TruncDate("hour", tzinfo=period.zone), DIMENSIONS, totals_annotations)


def customer_rows(
    *,
    organization,
    period: Period,
    dimension: str,
    value: Any,
    customer_id: Any,
    daily: bool = False,
) -> Rows:
    """CustomerRollup rows of the period (its intervals; `daily`: its days) for
    one split (`dimension` "" for totals; `value` None: every value of it) and
    one customer or all (`customer_id` None)."""
    qs: QuerySet = CustomerRollup.objects.filter(organization=organization, dimension=dimension)
    if value is not None:
        qs = qs.filter(value=value)
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    if daily:
        qs = qs.filter(span=Span.DAY, start__gte=period.start, start__lte=period.end)
    else:
        qs = qs.filter(spans_q(period_spans(period, today=org_today(organization))))
    columns = {"customer": "customer_id"}
    if dimension in CUSTOMER_DIMENSIONS:
        columns[dimension] = "value"
    every = customer_id is None and value is not None
    scope = (dimension, str(value)) if every else None
    return Rows(qs, F("start"), columns, counted_errors_annotations, scope=scope)


# What the property rollups can group by or filter on: the coarse ones
# without the customer; the customer ones (PropertyCustomerHourlyRollup) all.
PROPERTY_COLUMNS = {name: column for name, column in DIMENSIONS.items() if name != "customer"}


def property_rows(
    *,
    organization,
    period: Period,
    filters: UsageFilters,
    by: str | None,
    daily: bool = False,
    hourly: bool = False,
) -> Rows | None:
    """The property rollups' rows for a filter on one x-property-* pair, alone
    or with filters on the rollups' dimensions, or None: more than one
    property, a trace, cost or latency filter, or a capped key
    (analytics.properties) read the events. Customer rankings and one
    customer's totals read CustomerRollup's rows of the pair; other questions
    about customers (a customer's models, customers of a model) read
    PropertyCustomer{Daily,Hourly}Rollup; the rest the coarse property tables (daily
    rows, here too, when the daily tables are in the period's zone and no hour-of-day
    question is asked; PropertyDailyModelRollup for questions about providers,
    models and features only)."""
    if by not in (None, *DIMENSIONS) or not property_rollups_answer(
        organization=organization, filters=filters
    ):
        return None
    ((name, value),) = filters.properties
    lookup = replace(filters, properties=()).lookup()
    ready = not hourly and daily_ready(organization, period)
    if by == "customer" or "customer_id" in lookup:
        if ready and by in (None, "customer") and set(lookup) <= {"customer_id"}:
            return customer_rows(
                organization=organization,
                period=period,
                dimension=PROPERTY_CUSTOMER_PREFIX + name,
                value=value,
                customer_id=lookup.get("customer_id"),
                daily=daily,
            )
        tables: tuple[Any, Any, Any] = (
            PropertyCustomerDailyRollup,
            PropertyCustomerHourlyRollup,
            DIMENSIONS,
        )
    else:
        tables = (PropertyDailyRollup, PropertyHourlyRollup, PROPERTY_COLUMNS)
    daily_model, hourly_model, columns = tables
    pair = {"organization": organization, "name": name, "value": value, **lookup}
    if ready and _model_cut_answers(lookup, by):  # never a customer question here
        # The pair's cut without environment, key and status (as DailyModelRollup).
        cut = PropertyDailyModelRollup.objects.filter(
            day__gte=period.start, day__lte=period.end, **pair
        )
        return Rows(cut, F("day"), PROPERTY_COLUMNS, counted_errors_annotations)
    if ready:
        days = daily_model.objects.filter(day__gte=period.start, day__lte=period.end, **pair)
        return Rows(days, F("day"), columns, totals_annotations)
    hours = hourly_model.objects.filter(hour__gte=period.start_utc, hour__lt=period.end_utc, **pair)
    return Rows(hours, TruncDate("hour", tzinfo=period.zone), columns, totals_annotations)


def property_rollups_answer(*, organization, filters: UsageFilters) -> bool:
    """Do the property rollups answer these filters (`property_rows`)? One
    x-property-* pair whose key is not capped, alone or with filters on the
    rollups' dimensions."""
    if len(filters.properties) != 1 or replace(filters, properties=()).needs_events:
        return False
    ((name, _),) = filters.properties
    capped = PropertyKey.objects.filter(organization=organization, name=name, capped=True)
    return not capped.exists()


def customer_scope(lookup: dict[str, Any], by: str | None) -> tuple[str, Any, Any] | None:
    """(dimension, value, customer_id) of the CustomerRollup rows that answer a
    query with these filters, grouped `by` (None: totals), or None if they can't.

    They hold each customer's totals and its split by model, feature and
    status (CUSTOMER_DIMENSIONS): enough for "customers of this model/feature/
    status" and "models/features of this customer", not for other filters
    (key, environment, provider).
    """
    lookup = dict(lookup)
    customer_id = lookup.pop("customer_id", None)
    if by not in (None, "customer") and by not in CUSTOMER_DIMENSIONS:
        return None
    if by in CUSTOMER_DIMENSIONS:
        # "models of this customer": one customer, nothing else filtered.
        if customer_id is None or lookup:
            return None
        return by, None, customer_id
    if by is None and customer_id is None:
        return None  # no customer involved: the coarse tables are smaller
    if not lookup:
        return "", "", customer_id
    if len(lookup) == 1:
        ((name, value),) = lookup.items()
        if name in CUSTOMER_DIMENSIONS:
            return name, value, customer_id
    return None


def customer_costs(
    *, organization, periods: list[Period], filters: UsageFilters | None = None
) -> list[dict] | None:
    """Each customer's cost in each period ({customer id: cost}, only customers
    with calls in it), or None where CustomerRollup does not answer the filters
    (the caller sums rollup rows then). PostgreSQL only.

    One UNION ALL of index-only scans of cr_span_cost, one per period and
    interval kind (`start = ANY(…)`): an OR of intervals is a bitmap scan that
    visits a heap page per row (~10,000 pages for a month of 5,000 customers
    against both periods, most of the change and margin rankings' time at 10M
    events); the index holds each row's cost and customer."""
    if connection.vendor != "postgresql" or (filters is not None and filters.needs_events):
        return None
    scope = customer_scope(filters.lookup() if filters is not None else {}, "customer")
    if scope is None or scope[2] is not None:
        return None
    if not all(daily_ready(organization, period) for period in periods):
        return None
    dimension, value, _ = scope
    today = org_today(organization)
    parts: list[str] = []
    params: list[Any] = []
    for n, period in enumerate(periods):
        starts: dict[str, list] = {}
        for span, start in period_spans(period, today=today):
            starts.setdefault(span, []).append(start)
        for span, days in starts.items():
            parts.append(
                f"SELECT {n} AS p, customer_id, cost FROM {CustomerRollup._meta.db_table} "  # noqa: S608
                "WHERE organization_id = %s AND dimension = %s AND value = %s "
                "AND span = %s AND start = ANY(%s)"
            )
            params += [organization.pk, dimension, str(value), span, days]
    found: list[dict] = [{} for _ in periods]
    if not parts:
        return found
    sums = ", ".join(f"SUM(cost) FILTER (WHERE p = {n})" for n in range(len(periods)))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT customer_id, {sums} FROM ({' UNION ALL '.join(parts)}) AS c "  # noqa: S608
            "GROUP BY customer_id",
            params,
        )
        for customer_id, *costs in cursor.fetchall():
            for into, cost in zip(found, costs, strict=True):
                if cost is not None:
                    into[customer_id] = money(cost)
    return found


def spans_q(spans: list[tuple[str, Any]]) -> Q:
    """CustomerRollup rows of these intervals (analytics.intervals.period_spans)."""
    starts: dict[str, list] = {}
    for span, start in spans:
        starts.setdefault(span, []).append(start)
    q = Q(pk__in=[])
    for span, values in starts.items():
        q |= Q(span=span, start__in=values)
    return q


def rollup_model(*, by: str | None = None, organization=None):
    """The smallest table that knows every value of a dimension (404 checks):
    HourlyRollup has an index by customer; the others are scanned."""
    if by == "customer":
        return HourlyRollup
    if organization is not None and daily_ready(organization):
        return DailyCoarseRollup
    return HourlyCoarseRollup


def change_ratio(current: Decimal, previous: Decimal) -> Decimal | None:
    """(current - previous) / previous, or None when there is nothing to compare with."""
    if not previous:
        return None
    return ((current - previous) / previous).quantize(Decimal("0.0001"))


def hourly_coarse_cost_fresh(
    *, organization_id: int, since: datetime, until: datetime, **lookup: Any
) -> Decimal:
    """Cost in HourlyCoarseRollup hours [since, until) (UTC) plus the deltas
    the fold has not added yet (analytics.fold): as fresh as the ledger itself,
    for readers that cannot wait seconds (the budget gate's reconciliation).
    `lookup`: equality filters on coarse dimensions. One statement on
    PostgreSQL, so a fold committing meanwhile is counted exactly once."""
    where = {"organization_id": organization_id, "hour__gte": since, "hour__lt": until, **lookup}
    coarse = HourlyCoarseRollup.objects.filter(**where).values("cost")
    pending = RollupDelta.objects.filter(**where).values("cost")
    if connection.vendor == "postgresql":
        coarse_sql, coarse_params = coarse.query.sql_with_params()
        pending_sql, pending_params = pending.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT SUM(cost) FROM ({coarse_sql} UNION ALL {pending_sql}) AS fresh",  # noqa: S608
                [*coarse_params, *pending_params],
            )
            return money(cursor.fetchone()[0])
    # SQLite: one writer at a time; the fold runs in the writer's transaction.
    total = money(pending.aggregate(total=cost_sum())["total"])
    return total + money(coarse.aggregate(total=cost_sum())["total"])
