"""The top customers by cost without summing every customer.

A period is a handful of CustomerRollup intervals (analytics.intervals.period_spans),
each holding thousands of customers. Ranking them all means summing every
row of every interval; the overview needs five. The threshold algorithm
(Fagin et al.) reads each interval's biggest spenders only, from an index on
cost: a customer outside an interval's top m spent at most the m-th cost
there, so no unseen customer can total more than the sum of those m-th costs.
Once the k-th best exact total of the customers seen beats that bound, the
top k is exact; otherwise m grows, and past `MAX_DEPTH` the caller sums
everything as before. With the long tail real spend has, m = 2k nearly
always suffices; ties at zero (a model without a price) go straight to the
full sum.
"""

from __future__ import annotations

from decimal import Decimal

from django.db.models import F

from analytics.intervals import period_spans
from analytics.models import CustomerRollup
from analytics.periods import Period, org_today
from analytics.selectors._common import cost_sum, money, spans_q

MIN_DEPTH = 32
MAX_DEPTH = 1024


def top_customers_by_cost(
    *, organization, period: Period, k: int, dimension: str = "", value: str = ""
) -> list[str] | None:
    """The k customer ids with the highest cost in the period, in ranking order
    (cost descending, then id), exactly; None if the bound did not close.
    `dimension`/`value` ("model", "gpt-4o") rank the customers of one model
    or feature instead of all their spend."""
    spans = period_spans(period, today=org_today(organization))
    rows = CustomerRollup.objects.filter(
        organization=organization, dimension=dimension, value=value
    )
    depth = max(2 * k, MIN_DEPTH)
    while depth <= MAX_DEPTH:
        bound = Decimal(0)
        seen: set[str] = set()
        exhausted = True
        for span, start in spans:
            leaders = list(  # index cr_span_cost
                rows.filter(span=span, start=start)
                .order_by("-cost")
                .values_list("customer_id", "cost")[:depth]
            )
            seen.update(customer for customer, _ in leaders)
            if len(leaders) == depth:
                bound += money(leaders[-1][1])
                exhausted = False
        if not seen:
            return []
        exact = {
            row["key"]: money(row["c"])
            for row in rows.filter(spans_q(spans), customer_id__in=seen)
            .values(key=F("customer_id"))
            .annotate(c=cost_sum())
            .order_by()
        }
        ranked = sorted(exact, key=lambda customer: (-exact[customer], customer))
        if exhausted:  # every row of every interval was read
            return ranked[:k]
        if len(ranked) >= k and exact[ranked[k - 1]] > bound:
            return ranked[:k]
        if not bound:
            # Unseen customers may tie at zero (unpriced calls) and win on
            # their id: reading deeper never settles that, summing does.
            return None
        depth *= 4
    return None


def _customers_union(organization, period: Period, dimension: str, value: str):
    """The period's distinct customers as a UNION of one index-only scan per
    interval kind (an OR over them makes PostgreSQL read the table), or None."""
    starts: dict[str, list] = {}
    for span, start in period_spans(period, today=org_today(organization)):
        starts.setdefault(span, []).append(start)
    parts = [
        CustomerRollup.objects.filter(
            organization=organization,
            dimension=dimension,
            value=value,
            span=span,
            start__in=days,
        ).values_list("customer_id", flat=True)
        for span, days in starts.items()
    ]
    if not parts:
        return None
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0].distinct()


def customer_count(*, organization, period: Period, dimension: str = "", value: str = "") -> int:
    """How many customers called in the period."""
    customers = _customers_union(organization, period, dimension, value)
    return 0 if customers is None else customers.count()


def customers_by_name(
    *,
    organization,
    period: Period,
    offset: int,
    limit: int,
    dimension: str = "",
    value: str = "",
    descending: bool = False,
) -> list[str]:
    """One page of the period's customer ids in name order (Z to A if `descending`)."""
    customers = _customers_union(organization, period, dimension, value)
    if customers is None:
        return []
    ordering = "-customer_id" if descending else "customer_id"
    return list(customers.order_by(ordering)[offset : offset + limit])
