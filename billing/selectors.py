"""Reads for billing: which plan is in force for an organization, and its usage.

The plan in force is not always the subscribed one: with billing off every
organization is on Self-hosted; a past-due subscription keeps its plan for
PAST_DUE_GRACE and then falls to Free; a cancelled one keeps its plan until
`current_period_end`. Every function takes the organization first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Organization
from analytics.models import HourlyRollup
from billing import windows
from billing.models import Plan, Subscription, SubscriptionStatus
from billing.plans import SEED

logger = logging.getLogger("aispendtrack.billing")

SELF_HOSTED, FREE, PRO, ENTERPRISE = "self-hosted", "free", "pro", "enterprise"
PAST_DUE_GRACE = timedelta(days=7)
FEATURES = ("api", "export", "alerts")


@dataclass(frozen=True)
class EffectivePlan:
    """The plan in force now, and why (for banners and /api/plan)."""

    plan: Plan
    status: str
    subscription: Subscription | None
    # Set while a past-due subscription keeps its plan: when it falls to Free.
    grace_until: datetime | None = None
    # The subscribed plan, when it is no longer in force (lapsed to Free).
    lapsed_from: Plan | None = None

    @property
    def retention_days(self) -> int | None:
        if self.plan.slug == SELF_HOSTED:
            return settings.AISPENDTRACK_RETENTION_DAYS
        return self.plan.retention_days

    @property
    def summarized_before(self) -> datetime | None:
        """Raw calls before this moment are purged: only rollups (daily totals) remain."""
        days = self.retention_days
        return None if days is None else timezone.now() - timedelta(days=days)

    def has_feature(self, feature: str) -> bool:
        return bool(getattr(self.plan, feature))


def billing_enabled() -> bool:
    return bool(settings.AISPENDTRACK_BILLING)


def plan_get(*, slug: str) -> Plan:
    """A built-in plan by slug; its seeded values (unsaved) if its row is gone."""
    plan = Plan.objects.filter(slug=slug).first()
    return plan if plan is not None else Plan(**SEED[slug])


def plan_default() -> Plan:
    """The plan a new organization starts on."""
    return plan_get(slug=FREE if billing_enabled() else SELF_HOSTED)


def subscription_for_org(*, organization: Organization) -> Subscription | None:
    return Subscription.objects.select_related("plan").filter(organization=organization).first()


def plan_in_force(subscription: Subscription | None, *, free: Plan, now: datetime) -> EffectivePlan:
    """The effective plan of a subscription (billing on). Pure: no queries."""
    if subscription is None:
        return EffectivePlan(plan=free, status=SubscriptionStatus.ACTIVE, subscription=None)
    plan, status = subscription.plan, subscription.status
    if status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
        return EffectivePlan(plan=plan, status=status, subscription=subscription)
    if status == SubscriptionStatus.PAST_DUE:
        since = subscription.past_due_since or now
        grace_until = since + PAST_DUE_GRACE
        if now < grace_until:
            return EffectivePlan(plan, status, subscription, grace_until=grace_until)
    if (
        status == SubscriptionStatus.CANCELED
        and subscription.current_period_end is not None
        and now < subscription.current_period_end
    ):
        return EffectivePlan(plan=plan, status=status, subscription=subscription)
    lapsed = plan if plan.pk != free.pk else None
    return EffectivePlan(plan=free, status=status, subscription=subscription, lapsed_from=lapsed)


def plan_effective(*, organization: Organization, now: datetime | None = None) -> EffectivePlan:
    """The plan in force for `organization` now (see the module docstring)."""
    if not billing_enabled():
        return EffectivePlan(
            plan=plan_get(slug=SELF_HOSTED),
            status=SubscriptionStatus.ACTIVE,
            subscription=subscription_for_org(organization=organization),
        )
    return plan_in_force(
        subscription_for_org(organization=organization),
        free=plan_get(slug=FREE),
        now=now or timezone.now(),
    )


@dataclass(frozen=True)
class OrgLimits:
    """What the proxy's gate needs of one organization."""

    plan_name: str
    monthly_calls: int | None
    hourly_requests: int | None


def plan_limits_all_orgs(
    *, now: datetime | None = None, changed_since: datetime | None = None
) -> tuple[dict[int, OrgLimits], OrgLimits]:
    """Every subscribed organization's limits (only subscriptions saved since
    `changed_since`, if given), and the default for the rest (billing on).
    Crosses organizations on purpose: the proxy gate's table."""
    now = now or timezone.now()
    free = plan_get(slug=FREE)
    table = {}
    subscriptions = Subscription.objects.select_related("plan")
    if changed_since is not None:
        subscriptions = subscriptions.filter(updated_at__gte=changed_since)
    for subscription in subscriptions:
        plan = plan_in_force(subscription, free=free, now=now).plan
        table[subscription.organization_id] = OrgLimits(
            plan.name, plan.monthly_call_limit, plan.hourly_request_limit
        )
    return table, OrgLimits(free.name, free.monthly_call_limit, free.hourly_request_limit)


def calls_this_month_all_orgs(*, now: datetime | None = None) -> dict[int, int]:
    """Recorded calls per organization this calendar month (UTC), from the hourly rollups."""
    start = windows.month_start(now or timezone.now())
    rows = (
        HourlyRollup.objects.filter(hour__gte=start)
        .values("organization_id")
        .annotate(calls=Sum("calls"))
    )
    return {row["organization_id"]: int(row["calls"] or 0) for row in rows}


def _redis_counter(key: str) -> int | None:
    if not settings.REDIS_URL:
        return None
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5)
        try:
            value = client.get(key)
        finally:
            client.close()
    except redis.RedisError:
        logger.warning("plan counters unreachable in Redis; showing recorded calls")
        return None
    return int(value) if value is not None else 0


@dataclass(frozen=True)
class PlanUsage:
    calls_this_month: int
    requests_this_hour: int


def plan_usage(*, organization: Organization, now: datetime | None = None) -> PlanUsage:
    """Tracked calls this month and proxy requests this hour (UTC windows).

    Recorded calls come from the hourly rollups (up to a second behind the
    proxy); with Redis the proxy's own counters are read too and the larger
    number wins, so a page never shows less than the gate counts.
    """
    now = now or timezone.now()
    month_calls = HourlyRollup.objects.filter(
        organization=organization, hour__gte=windows.month_start(now)
    ).aggregate(calls=Sum("calls"))["calls"]
    hour_calls = HourlyRollup.objects.filter(
        organization=organization, hour__gte=windows.hour_start(now)
    ).aggregate(calls=Sum("calls"))["calls"]
    month = int(month_calls or 0)
    hour = int(hour_calls or 0)
    shared_month = _redis_counter(windows.month_counter_key(organization.pk, now))
    shared_hour = _redis_counter(windows.hour_counter_key(organization.pk, now))
    return PlanUsage(
        calls_this_month=max(month, shared_month or 0),
        requests_this_hour=max(hour, shared_hour or 0),
    )


FEATURE_NAMES = {
    "api": "the REST API",
    "export": "CSV/JSON export",
    "alerts": "alerts and webhooks",
}


def feature_denial(*, organization: Organization, feature: str) -> str | None:
    """None if the plan in force includes `feature`, else a message saying how to get it."""
    effective = plan_effective(organization=organization)
    if effective.has_feature(feature):
        return None
    return (
        f"Your organization's {effective.plan.name} plan does not include "
        f"{FEATURE_NAMES.get(feature, feature)}. Upgrade to Pro in Settings → Billing "
        "to use it."
    )
