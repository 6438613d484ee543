"""Reads for budgets and alerts. Every read takes the organization first and
returns the same 404 for "missing" and "not yours"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import ApiKey, Organization
from alerts.models import AlertChannel, AlertEvent, Budget, BudgetScope, Delivery
from alerts.periods import budget_period
from analytics.models import HourlyCoarseRollup, HourlyRollup, RefusalRollup
from analytics.params import UsageFilters
from analytics.periods import Period, org_zone
from analytics.selectors import money, spend_forecast, spend_totals
from analytics.selectors._common import cost_sum, hourly_coarse_cost_fresh

HUNDRED = Decimal(100)
WARNING_PERCENT = Decimal(80)


def budget_filters(budget: Budget) -> UsageFilters:
    """The ledger filter of a budget's scope."""
    value = budget.scope_value
    if budget.scope == BudgetScope.CUSTOMER:
        return UsageFilters(customer_id=value)
    if budget.scope == BudgetScope.FEATURE:
        return UsageFilters(feature=value)
    if budget.scope == BudgetScope.API_KEY:
        return UsageFilters(key_id=int(value))
    if budget.scope == BudgetScope.ENVIRONMENT:
        return UsageFilters(environment=value)
    return UsageFilters()


@dataclass(slots=True)
class BudgetStatus:
    """A budget in its current period. Money in USD; `spend` excludes unpriced
    calls, which are counted apart (`unpriced_calls`), never as $0."""

    budget: Budget
    period: Period
    spend: Decimal
    unpriced_calls: int
    calls: int
    projected: Decimal | None  # end-of-period spend at the current run rate, if asked

    @property
    def projected_over(self) -> Decimal | None:
        """How far the projection passes the amount (None: it does not, or unknown)."""
        if self.projected is None or self.projected <= self.budget.amount:
            return None
        return self.projected - self.budget.amount

    @property
    def period_start(self) -> datetime:
        return self.period.start_utc

    @property
    def period_end(self) -> datetime:
        return self.period.end_utc

    @property
    def percent_used(self) -> Decimal:
        amount = self.budget.amount
        if amount <= 0:
            return HUNDRED if self.spend > 0 else Decimal(0)
        return (self.spend * HUNDRED / amount).quantize(Decimal("0.01"))

    @property
    def status(self) -> str:
        """`exceeded` at or over the amount, `warning` from 80 % used, else `ok`."""
        if self.spend >= self.budget.amount:
            return "exceeded"
        if self.percent_used >= WARNING_PERCENT:
            return "warning"
        return "ok"

    @property
    def bar_percent(self) -> int:
        return int(min(self.percent_used, HUNDRED))


def budget_status(
    *,
    organization: Organization,
    budget: Budget,
    now: datetime | None = None,
    forecast: bool = False,
) -> BudgetStatus:
    """Spend of the budget's current period (org zone) from the rollups; with
    `forecast`, also its end-of-period spend by the overview's month-end rule
    (spend so far + the last 7 complete days' daily average × the days left),
    for the pages and the API (evaluation does without those queries)."""
    now = now or timezone.now()
    period = budget_period(budget.period, org_zone(organization), now)
    filters = budget_filters(budget)
    totals = spend_totals(organization=organization, period=period, filters=filters)
    projected = None
    if forecast:
        projected = spend_forecast(
            organization=organization, now=now, filters=filters, period=period
        ).projected
    return BudgetStatus(
        budget=budget,
        period=period,
        spend=totals.cost,
        unpriced_calls=totals.unpriced_calls,
        calls=totals.calls,
        projected=projected,
    )


def budget_list(*, organization: Organization) -> QuerySet[Budget]:
    return Budget.objects.filter(organization=organization).prefetch_related("channels")


def budget_statuses(
    *, organization: Organization, now: datetime | None = None, forecast: bool = False
) -> list[BudgetStatus]:
    return [
        budget_status(organization=organization, budget=budget, now=now, forecast=forecast)
        for budget in budget_list(organization=organization)
    ]


def budget_get_for_org(*, organization: Organization, id: int) -> Budget:
    budget = budget_list(organization=organization).filter(pk=id).first()
    if budget is None:
        raise Http404("No such budget.")
    return budget


def budgets_needing_attention(*, organization: Organization) -> list[BudgetStatus]:
    """Active budgets at `warning` or `exceeded` (the overview's card)."""
    return [
        status
        for status in budget_statuses(organization=organization)
        if status.budget.is_active and status.status != "ok"
    ]


def alert_channel_list(*, organization: Organization) -> QuerySet[AlertChannel]:
    return AlertChannel.objects.filter(organization=organization)


def alert_channel_get_for_org(*, organization: Organization, id: int) -> AlertChannel:
    channel = alert_channel_list(organization=organization).filter(pk=id).first()
    if channel is None:
        raise Http404("No such alert channel.")
    return channel


def alert_event_list(*, organization: Organization) -> QuerySet[AlertEvent]:
    """Alerts raised, newest first."""
    return AlertEvent.objects.filter(organization=organization).select_related("budget")


def delivery_list(
    *, organization: Organization, channel: AlertChannel | None = None
) -> QuerySet[Delivery]:
    qs = Delivery.objects.filter(organization=organization).select_related("event", "channel")
    if channel is not None:
        qs = qs.filter(channel=channel)
    return qs


# --- for the proxy's hard cap (proxy/budgets.py): every organization at once ----


@dataclass(frozen=True, slots=True)
class CapSpec:
    """An active `block` budget as the proxy enforces it."""

    id: int
    organization_id: int
    name: str
    scope: str
    scope_value: str
    period: str
    amount: Decimal
    timezone: str
    updated_at: datetime


def block_budgets_all_orgs() -> list[CapSpec]:
    """Every active hard-cap budget of every organization (the proxy loads them all)."""
    rows = Budget.objects.filter(is_active=True, action="block").values_list(
        "id",
        "organization_id",
        "name",
        "scope",
        "scope_value",
        "period",
        "amount",
        "organization__timezone",
        "updated_at",
    )
    return [CapSpec(*row) for row in rows]


def budget_ledger_spend(
    *, organization_id: int, scope: str, scope_value: str, since: datetime, until: datetime
) -> Decimal:
    """Ledger cost of the scope's calls in rollup hours [since, until) (UTC hour
    boundaries, except a :30/:45 zone's period start), from the hourly rollups."""
    lookup: dict[str, object] = {}
    if scope == BudgetScope.CUSTOMER:
        customer = HourlyRollup.objects.filter(
            organization_id=organization_id,
            hour__gte=since,
            hour__lt=until,
            customer_id=scope_value,
        )
        return money(customer.aggregate(total=cost_sum())["total"])
    if scope == BudgetScope.FEATURE:
        lookup = {"feature": scope_value}
    elif scope == BudgetScope.API_KEY:
        lookup = {"api_key_id": int(scope_value)}
    elif scope == BudgetScope.ENVIRONMENT:
        lookup = {"environment": scope_value}
    # The coarse table plus the deltas not folded yet: as fresh as the ledger.
    return hourly_coarse_cost_fresh(
        organization_id=organization_id, since=since, until=until, **lookup
    )


def scope_value_choices(*, organization: Organization) -> dict[str, list[tuple[str, str]]]:
    """The organization's own customers, features, environments (seen in the
    last 90 days, up to 500 each) and keys: the budget form's pickers."""
    since = timezone.now() - timedelta(days=90)
    hours = HourlyCoarseRollup.objects.filter(organization=organization, hour__gte=since)
    customers = (
        HourlyRollup.objects.filter(organization=organization, hour__gte=since)
        .exclude(customer_id="")
        .values_list("customer_id", flat=True)
        .distinct()
        .order_by("customer_id")[:500]
    )

    def distinct(column: str) -> list[str]:
        values = hours.exclude(**{column: ""}).values_list(column, flat=True).distinct()
        return list(values.order_by(column)[:500])

    keys = ApiKey.objects.filter(organization=organization).order_by("name")
    return {
        "customer": [(value, value) for value in customers],
        "feature": [(value, value) for value in distinct("feature")],
        "environment": [(value, value) for value in distinct("environment")],
        "api_key": [(str(key.pk), f"{key.name} ({key.prefix}…)") for key in keys],
    }


@dataclass(slots=True)
class RefusalHour:
    hour: datetime
    budget: int = 0
    plan: int = 0


def refusals_by_hour(*, organization: Organization, hours: int = 24) -> list[RefusalHour]:
    """Calls refused in the last `hours` hours (UTC hours, newest first), by
    budgets and by plan limits; only hours with refusals."""
    since = timezone.now() - timedelta(hours=hours)
    rows = RefusalRollup.objects.filter(organization=organization, hour__gte=since)
    out: dict[datetime, RefusalHour] = {}
    for hour, reason, count in rows.values_list("hour", "reason", "count"):
        entry = out.setdefault(hour, RefusalHour(hour))
        if reason == "plan":
            entry.plan += count
        else:
            entry.budget += count
    return sorted(out.values(), key=lambda entry: entry.hour, reverse=True)
