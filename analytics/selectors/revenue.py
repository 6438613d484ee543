"""Revenue and margin reads: what customers paid over a period, next to their AI cost.

An entry's amount is spread evenly over the days it covers, so a period gets
amount × (days of the entry inside the period) / (days of the entry). Revenue
is None ("unknown"), never 0, for a customer with no entry touching the
period; margin and margin % are then None too. Margin % is also None when the
known revenue is 0 (nothing to divide by).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext

from django.db.models import F, QuerySet
from django.http import Http404

from analytics.models import RevenueEntry, RevenueSettings
from analytics.params import UsageFilters
from analytics.periods import Period, org_today, org_zone
from analytics.selectors._common import QUANTUM, ZERO, Totals, cost_sum, money, rollup_rows
from analytics.selectors.ranking import page_totals
from analytics.selectors.spend import spend_breakdown, spend_forecast, spend_totals
from analytics.selectors.tables import change_value, costs_by_value
from analytics.sorting import sort_rows, totals_sort_value

PERCENT = Decimal("0.01")
DEFAULT_THIN_PERCENT = Decimal(20)


@dataclass(frozen=True, slots=True)
class Margin:
    revenue: Decimal | None
    cost: Decimal
    margin: Decimal | None
    margin_percent: Decimal | None

    @property
    def unprofitable(self) -> bool:
        return self.margin is not None and self.margin < 0

    def thin(self, threshold: Decimal) -> bool:
        """Known revenue and a margin % below the threshold (unprofitable included)."""
        return self.margin_percent is not None and self.margin_percent < threshold


def margin_of(revenue: Decimal | None, cost: Decimal) -> Margin:
    if revenue is None:
        return Margin(None, cost, None, None)
    margin = revenue - cost
    percent = (margin / revenue * 100).quantize(PERCENT) if revenue else None
    return Margin(revenue, cost, margin, percent)


def _share(amount: Decimal, start: date, end: date, period_start: date, period_end: date):
    overlap = (min(end, period_end) - max(start, period_start)).days + 1
    days = (end - start).days + 1
    if overlap >= days:
        return amount
    with localcontext() as ctx:
        ctx.prec = 40
        return amount * overlap / days


def revenue_entries_in(*, organization, period: Period) -> QuerySet[RevenueEntry]:
    """The organization's entries that cover at least one day of the period."""
    return RevenueEntry.objects.filter(
        organization=organization, period_end__gte=period.start, period_start__lte=period.end
    )


def revenue_by_customer(
    *, organization, period: Period, customer_ids: Iterable[str] | None = None
) -> dict[str, Decimal]:
    """Revenue per customer over the period's days (only customers with an entry there)."""
    qs = revenue_entries_in(organization=organization, period=period)
    if customer_ids is not None:
        qs = qs.filter(customer_id__in=list(customer_ids))
    sums: dict[str, Decimal] = {}
    for customer_id, amount, start, end in qs.values_list(
        "customer_id", "amount", "period_start", "period_end"
    ):
        share = _share(amount, start, end, period.start, period.end)
        sums[customer_id] = sums.get(customer_id, Decimal(0)) + share
    return {key: value.quantize(QUANTUM) for key, value in sums.items()}


def margins_for(*, organization, period: Period, rows: list[Totals]) -> dict[str, Margin]:
    """The margin of each customer row (Totals keyed by customer id) over the period."""
    revenue = revenue_by_customer(
        organization=organization, period=period, customer_ids=[row.key for row in rows]
    )
    return {row.key: margin_of(revenue.get(row.key), row.cost) for row in rows}


def customer_margin(*, organization, period: Period, customer_id: str) -> Margin:
    cost = spend_totals(
        organization=organization, period=period, filters=UsageFilters(customer_id=customer_id)
    ).cost
    revenue = revenue_by_customer(
        organization=organization, period=period, customer_ids=[customer_id]
    )
    return margin_of(revenue.get(customer_id), cost)


@dataclass(slots=True)
class CustomerMargin:
    totals: Totals  # key: the customer id; zero totals for a paying customer without calls
    margin: Margin


def customers_with_margin(
    *, organization, period: Period, filters: UsageFilters | None = None, search: str = ""
) -> list[CustomerMargin]:
    """Every customer with calls (that pass `filters`) in the period, with its
    margin, then, without filters, the customers with revenue but no calls (for
    sorting and filtering by margin: a full ranking, costliest first)."""
    rows = spend_breakdown(
        organization=organization, period=period, by="customer", filters=filters, search=search
    )
    return _with_revenue(organization, period, rows, search, filters=filters)


def _with_revenue(
    organization,
    period: Period,
    rows: Iterable[Totals],
    search: str,
    *,
    filters: UsageFilters | None = None,
):
    """Each row with its margin, then the customers with revenue but no calls
    (none under filters: a filter keeps calls, and they have none)."""
    revenue = revenue_by_customer(organization=organization, period=period)
    out = [CustomerMargin(row, margin_of(revenue.pop(row.key, None), row.cost)) for row in rows]
    if filters is not None and filters.active:
        return out
    for customer_id, amount in sorted(revenue.items()):
        if search and search.lower() not in customer_id.lower():
            continue
        out.append(CustomerMargin(Totals(key=customer_id), margin_of(amount, ZERO)))
    return out


@dataclass(slots=True)
class Unprofitable:
    period: Period
    count: int  # customers whose known revenue is below their cost
    loss: Decimal  # the sum of their (negative) margins
    known: int = 0  # customers with revenue this month


def unprofitable_this_month(*, organization, now: datetime | None = None) -> Unprofitable:
    """Customers that cost more than they paid this month to date (revenue known only)."""
    today = org_today(organization, now=now)
    period = Period(today.replace(day=1), today, org_zone(organization))
    revenue = revenue_by_customer(organization=organization, period=period)
    if not revenue:
        return Unprofitable(period, 0, ZERO)
    rows = rollup_rows(organization=organization, period=period, by="customer")
    column = rows.column("customer")
    # The paying customers as a subquery, not a list of ids: thousands of
    # parameters cost more to bind and plan than the read itself.
    paying = revenue_entries_in(organization=organization, period=period).values("customer_id")
    costs = {
        row["key"]: money(row["c"])
        for row in rows.qs.filter(**{f"{column}__in": paying})
        .values(key=F(column))
        .annotate(c=cost_sum())
        .order_by()
    }
    margins = [amount - costs.get(customer_id, ZERO) for customer_id, amount in revenue.items()]
    losses = [m for m in margins if m < 0]
    return Unprofitable(period, len(losses), sum(losses, ZERO), len(revenue))


@dataclass(slots=True)
class MonthPnl:
    month: date  # the first day
    revenue: Decimal | None
    cost: Decimal
    margin: Decimal | None


def customer_pnl_monthly(
    *, organization, customer_id: str, months: int = 12, now: datetime | None = None
) -> list[MonthPnl]:
    """The customer's revenue, cost and margin per calendar month (org zone),
    the last `months` months up to this one (this month to date)."""
    today = org_today(organization, now=now)
    zone = org_zone(organization)
    firsts = [today.replace(day=1)]
    while len(firsts) < months:
        firsts.append((firsts[-1] - timedelta(days=1)).replace(day=1))
    out = []
    for first in reversed(firsts):
        last = min(today, (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(1))
        period = Period(first, last, zone)
        margin = customer_margin(organization=organization, period=period, customer_id=customer_id)
        out.append(MonthPnl(first, margin.revenue, margin.cost, margin.margin))
    return out


def revenue_entries(
    *, organization, customer_id: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[RevenueEntry], int]:
    """A page of the organization's entries, newest period first, and their count."""
    qs = RevenueEntry.objects.filter(organization=organization)
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    return list(qs[offset : offset + limit]), qs.count()


def revenue_entry_get_for_org(*, organization, entry_id: int) -> RevenueEntry:
    """One entry of this organization; the same 404 for missing and not yours."""
    entry = RevenueEntry.objects.filter(organization=organization, pk=entry_id).first()
    if entry is None:
        raise Http404("No such revenue entry.")
    return entry


def revenue_settings_get(*, organization) -> RevenueSettings:
    """The organization's revenue settings; an unsaved default row if it has none."""
    found = RevenueSettings.objects.filter(organization=organization).first()
    return found or RevenueSettings(organization=organization)


MARGIN_SORTS = ("margin", "margin_percent", "revenue")
ONE_SUM_SORTS = (*MARGIN_SORTS, "cost", "name")
PROFIT_FILTERS = ("unprofitable", "thin")


def customer_margin_page(
    *,
    organization,
    period: Period,
    filters: UsageFilters | None = None,
    sort: str = "margin",
    descending: bool = False,
    profit: str | None = None,
    search: str = "",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[CustomerMargin], int]:
    """Customers sorted by any column of the customers table (exact values:
    average cost per call unrounded; unknown values last: no revenue, no spend
    either period; ties by id); `profit` keeps only the unprofitable
    ones (margin < 0) or the thin ones (margin % below the organization's
    threshold). Returns a page and the count.

    `filters` narrow the calls, as on every table: a customer's cost, so its
    margin, counts only the calls they keep, against its whole revenue (revenue
    is not per model, feature or key); customers without such calls drop out."""
    # Margin, revenue, cost and name need one sum per customer (its cost): rank
    # on that, then sum every counter for the page's customers only (as
    # spend_ranking does); the other columns need every customer's totals.
    # Only paying customers have a margin: the others are ranked by id alone
    # (unknown sorts last), and get their row objects only if on the page.
    one_sum = sort in ONE_SUM_SORTS
    scope = {"organization": organization, "period": period, "filters": filters}
    totals: dict = {}
    if one_sum:
        costs = costs_by_value(by="customer", search=search, **scope)
    else:
        totals = {row.key: row for row in spend_breakdown(by="customer", search=search, **scope)}
        costs = {key: row.cost for key, row in totals.items()}
    margins = _paying_margins(organization, period, costs, search, filters=filters)
    if profit == "unprofitable":
        keys = [key for key, margin in margins.items() if margin.unprofitable]
    elif profit == "thin":
        threshold = revenue_settings_get(organization=organization).thin_margin_percent
        keys = [key for key, margin in margins.items() if margin.thin(threshold)]
    else:
        keys = [*costs, *(key for key in margins if key not in costs)]
    previous: dict = {}
    if sort == "change":
        previous = costs_by_value(
            organization=organization, period=period.previous(), by="customer", filters=filters
        )

    def value(key):  # the cell as it sorts
        if sort in MARGIN_SORTS:
            margin = margins.get(key)
            return None if margin is None else getattr(margin, sort)
        if sort == "change":
            return change_value(costs.get(key, ZERO), previous.get(key, ZERO))
        if sort in ("cost", "name"):
            return costs.get(key, ZERO) if sort == "cost" else key
        return totals_sort_value(totals.get(key) or Totals(key=key), sort, key)

    ranked = sort_rows(keys, value=value, key=lambda key: key, descending=descending)
    page = [
        CustomerMargin(
            totals.get(key) or Totals(key=key, cost=costs.get(key, ZERO)),
            margins.get(key) or margin_of(None, costs.get(key, ZERO)),
        )
        for key in ranked[offset : offset + limit]
    ]
    if one_sum:
        page = _full_totals(organization, period, page, called=costs, filters=filters)
    return page, len(ranked)


def _full_totals(
    organization, period: Period, page: list[CustomerMargin], called, filters: UsageFilters | None
) -> list:
    """The page's rows with every counter summed (customers without calls keep zeros)."""
    rows = rollup_rows(organization=organization, period=period, filters=filters, by="customer")
    column = rows.column("customer")
    keys = [row.totals.key for row in page if row.totals.key in called]
    totals = dict(zip(keys, page_totals(rows, rows.qs, column, keys), strict=True))
    return [CustomerMargin(totals.get(row.totals.key, row.totals), row.margin) for row in page]


def _paying_margins(
    organization, period: Period, costs: dict, search: str, *, filters: UsageFilters | None
) -> dict[str, Margin]:
    """The margin of each customer with revenue in the period (and, without
    filters, revenue but no calls; under filters only those with calls kept)."""
    revenue = revenue_by_customer(organization=organization, period=period)
    narrowed = filters is not None and filters.active
    needle = search.lower()
    return {
        key: margin_of(amount, costs.get(key, ZERO))
        for key, amount in revenue.items()
        if (key in costs if narrowed else not needle or needle in key.lower())
    }


@dataclass(slots=True)
class CustomerForecast:
    projected_cost: Decimal  # this month, at the last 7 days' run rate (spend_forecast)
    projected_revenue: Decimal | None  # the revenue known for the whole month
    projected_margin: Decimal | None


def customer_forecast(*, organization, customer_id: str, now: datetime | None = None):
    """This month's projected AI cost of one customer (the overview's forecast
    rule) against the revenue known for the whole month."""
    forecast = spend_forecast(
        organization=organization, now=now, filters=UsageFilters(customer_id=customer_id)
    )
    month = Period(forecast.month_start, forecast.month_end, org_zone(organization))
    revenue = revenue_by_customer(
        organization=organization, period=month, customer_ids=[customer_id]
    ).get(customer_id)
    margin = None if revenue is None else revenue - forecast.projected
    return CustomerForecast(forecast.projected, revenue, margin)
