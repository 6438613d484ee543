"""The customer × feature matrix: cost and calls of each customer in each feature.

Read from CustomerRollup's per-feature split (dimension "feature"), never
from the events. A page is two steps, like every ranking: rank the customers
by the one sum the order needs (`spend_ranking`: overall, or within one
feature), then read the cells of that page's customers only (index cr_org_cust).
While the daily tables are re-keyed after a zone change (`daily_ready`),
HourlyRollup answers instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal

from django.db.models import F, QuerySet, Sum

from analytics.intervals import daily_ready, period_spans
from analytics.models import CustomerRollup, HourlyRollup
from analytics.params import UsageFilters
from analytics.periods import Period, org_today
from analytics.selectors._common import Totals, cost_sum, money, spans_q
from analytics.selectors.ranking import Ranking, spend_ranking
from analytics.selectors.spend import spend_breakdown

# Feature columns on the page (the most expensive ones); the export has all.
MATRIX_FEATURES = 20
FEATURE_SORT = "feature:"  # `?sort=-feature:chat`: by cost in that feature
# The filters the cells can answer: CustomerRollup's per-feature split keeps
# (customer, feature) and nothing else (no model, key, status, ...).
MATRIX_FILTERS = ("customer_id", "feature")


@dataclass(slots=True)
class Cell:
    calls: int = 0
    cost: Decimal = field(default_factory=lambda: Decimal(0))


@dataclass(slots=True)
class MatrixRow:
    customer: str
    total: Cell  # over all the customer's features
    cells: dict[str, Cell]  # feature → cell (absent: no calls)


@dataclass(slots=True)
class Matrix:
    features: list[Totals]  # the columns, costliest first (key: the feature)
    more_features: int  # features left out of the page (in the export)
    rows: list[MatrixRow]
    count: int  # customers in the whole ranking


def _cells(
    organization, period: Period, filters: UsageFilters | None = None
) -> tuple[QuerySet, str]:
    """Rollup rows holding cost and calls per (customer, feature) in the period
    (of one customer and/or one feature if `filters` say: MATRIX_FILTERS only),
    and the column that holds the feature."""
    qs: QuerySet
    if daily_ready(organization, period):
        spans = period_spans(period, today=org_today(organization))
        qs = CustomerRollup.objects.filter(organization=organization, dimension="feature")
        qs, column = qs.filter(spans_q(spans)), "value"
    else:
        qs = HourlyRollup.objects.filter(
            organization=organization, hour__gte=period.start_utc, hour__lt=period.end_utc
        )
        column = "feature"
    if filters is not None and filters.customer_id is not None:
        qs = qs.filter(customer_id=filters.customer_id)
    if filters is not None and filters.feature is not None:
        qs = qs.filter(**{column: filters.feature})
    return qs, column


def _cell_sums(qs: QuerySet, column: str) -> QuerySet:
    return (
        qs.values(customer=F("customer_id"), feature=F(column))
        .annotate(calls=Sum("calls"), cost=cost_sum())
        .order_by("customer", "feature")
    )


def matrix_features(
    *, organization, period: Period, filters: UsageFilters | None = None
) -> list[Totals]:
    """Every feature with calls (that pass `filters`) in the period, costliest
    first (the column choice)."""
    return spend_breakdown(organization=organization, period=period, by="feature", filters=filters)


def _matrix_filters(filters: UsageFilters | None) -> UsageFilters:
    """The filters, refused unless the cells can answer them (MATRIX_FILTERS)."""
    filters = filters or UsageFilters()
    other = [name for name, _ in filters.as_query() if name not in MATRIX_FILTERS]
    if other:
        raise ValueError(f"the matrix cannot filter by {', '.join(other)}")
    return filters


def customer_feature_matrix(
    *,
    organization,
    period: Period,
    order: str = "cost",
    descending: bool | None = None,
    feature: str | None = None,
    filters: UsageFilters | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Matrix:
    """One page of customers (ranked by `order` among cost, calls, name; with
    `feature`, by their cost in that feature, only its customers) and their
    cells in the period's most expensive MATRIX_FEATURES features. `filters`
    (MATRIX_FILTERS only) keep one customer and/or one feature's calls."""
    filters = _matrix_filters(filters)
    features = matrix_features(organization=organization, period=period, filters=filters)
    ranked_by = filters if feature is None else replace(filters, feature=feature)
    if feature is not None and filters.feature not in (None, feature):
        ranking = Ranking(rows=[], count=0)  # one feature's cost among another's calls
    else:
        ranking = spend_ranking(
            organization=organization,
            period=period,
            by="customer",
            filters=ranked_by if ranked_by.active else None,
            order=order,
            descending=descending,
            limit=limit,
            offset=offset,
        )
    columns = features[:MATRIX_FEATURES]
    if feature is not None and feature not in {f.key for f in columns}:
        columns += [f for f in features if f.key == feature]  # the sorted one stays in view
    customers = [row.key for row in ranking.rows]
    qs, column = _cells(organization, period, filters)
    rows = {customer: MatrixRow(customer, Cell(), {}) for customer in customers}
    for cell in _cell_sums(qs.filter(customer_id__in=customers), column):
        row = rows[cell["customer"]]
        row.cells[cell["feature"]] = Cell(cell["calls"] or 0, money(cell["cost"]))
        row.total.calls += cell["calls"] or 0
        row.total.cost += money(cell["cost"])
    return Matrix(
        features=columns,
        more_features=len(features) - len(columns),
        rows=[rows[customer] for customer in customers],
        count=ranking.count,
    )


def matrix_cells_iter(
    *, organization, period: Period, filters: UsageFilters | None = None
) -> Iterator[tuple[str, str, int, Decimal]]:
    """Every (customer, feature, calls, cost) of the period with calls (that
    pass `filters`, MATRIX_FILTERS only), by customer then feature (the CSV
    export: one grouped scan of the rollup, at most customers × features rows)."""
    qs, column = _cells(organization, period, _matrix_filters(filters))
    for row in _cell_sums(qs, column):
        yield row["customer"], row["feature"], row["calls"] or 0, money(row["cost"])
