"""Writes for billing: subscriptions (Stripe's side lives in billing.stripe_sync)."""

from __future__ import annotations

from django.db import transaction

from accounts.models import Organization
from billing.models import Plan, Subscription, SubscriptionStatus
from billing.plans import SEED
from billing.selectors import plan_default


def subscription_ensure(*, organization: Organization) -> Subscription:
    """The organization's subscription, created on the default plan (Free with
    billing on, Self-hosted with it off) if it has none yet."""
    subscription = Subscription.objects.select_related("plan").filter(organization=organization)
    found = subscription.first()
    if found is not None:
        return found
    plan = plan_default()
    if plan.pk is None:  # its row was deleted: re-create the built-in plan
        plan, _ = Plan.objects.get_or_create(slug=plan.slug, defaults=SEED[plan.slug])
    found, _ = Subscription.objects.get_or_create(
        organization=organization, defaults={"plan": plan, "status": SubscriptionStatus.ACTIVE}
    )
    return found


@transaction.atomic
def subscription_set_plan(*, organization: Organization, plan: Plan) -> Subscription:
    """Put an organization on `plan` by hand (staff: e.g. Enterprise), active."""
    subscription = subscription_ensure(organization=organization)
    subscription.plan = plan
    subscription.status = SubscriptionStatus.ACTIVE
    subscription.past_due_since = None
    subscription.save(update_fields=["plan", "status", "past_due_since", "updated_at"])
    return subscription
