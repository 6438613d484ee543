"""Stripe: Checkout and Portal sessions out, webhook events in.

State comes from Stripe's own subscription object, re-fetched for every event
(`subscriptions.retrieve`): Stripe does not order deliveries and timestamps
collide within a second, so the last event to arrive is not necessarily the
latest state, but the API's answer is. Each event id is applied once
(`StripeEvent`); a replay changes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Organization
from billing.models import Plan, StripeEvent, Subscription, SubscriptionStatus
from billing.selectors import PRO, plan_get
from billing.services import subscription_ensure

logger = logging.getLogger("aispendtrack.billing")

HANDLED = frozenset(
    {
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
    }
)
# Stripe's statuses → ours (Stripe has a few more than the issue names).
STATUSES = {
    "trialing": SubscriptionStatus.TRIALING,
    "active": SubscriptionStatus.ACTIVE,
    "past_due": SubscriptionStatus.PAST_DUE,
    "unpaid": SubscriptionStatus.PAST_DUE,
    "canceled": SubscriptionStatus.CANCELED,
    "paused": SubscriptionStatus.CANCELED,
    "incomplete": SubscriptionStatus.INCOMPLETE,
    "incomplete_expired": SubscriptionStatus.CANCELED,
}
# Errors worth Stripe retrying the delivery for: the webhook answers non-2xx.
TRANSIENT = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)


class BillingError(Exception):
    """A billing request that cannot be served; the message is for the user."""


class StripeUnavailable(Exception):
    """Stripe could not be reached: try again later (the webhook answers 503)."""


def stripe_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def stripe_client() -> stripe.StripeClient:
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        max_network_retries=1,
    )


def _pro_price(pro: Plan) -> str:
    return pro.stripe_price_id or settings.STRIPE_PRICE_PRO


def checkout_session_create(
    *, organization: Organization, email: str, success_url: str, cancel_url: str
) -> str:
    """A Stripe Checkout Session subscribing `organization` to Pro; its URL.

    The Stripe customer is created once and reused; the trial is offered only
    on the organization's first subscription."""
    if not stripe_configured():
        raise BillingError("Billing is not set up on this server (STRIPE_SECRET_KEY is empty).")
    pro = plan_get(slug=PRO)
    price = _pro_price(pro)
    if not price:
        raise BillingError("No Stripe price is set for Pro (STRIPE_PRICE_PRO is empty).")
    client = stripe_client()
    subscription = subscription_ensure(organization=organization)
    try:
        if not subscription.stripe_customer_id:
            customer = client.v1.customers.create(
                params={
                    "email": email,
                    "name": organization.name,
                    "metadata": {"organization_id": str(organization.pk)},
                }
            )
            subscription.stripe_customer_id = customer.id
            subscription.save(update_fields=["stripe_customer_id", "updated_at"])
        subscription_data: dict[str, Any] = {"metadata": {"organization_id": str(organization.pk)}}
        if not subscription.had_trial and pro.trial_days:
            subscription_data["trial_period_days"] = pro.trial_days
        session = client.v1.checkout.sessions.create(
            params={  # type: ignore[arg-type]
                "mode": "subscription",
                "customer": subscription.stripe_customer_id,
                "client_reference_id": str(organization.pk),
                "line_items": [{"price": price, "quantity": 1}],
                "subscription_data": subscription_data,
                "success_url": success_url,
                "cancel_url": cancel_url,
            }
        )
    except stripe.StripeError as error:
        logger.warning("Stripe checkout failed for org %s: %s", organization.pk, error)
        raise BillingError("Stripe could not start the checkout; try again in a minute.") from error
    return str(session.url)


def portal_session_create(*, organization: Organization, return_url: str) -> str:
    """A Stripe Customer Portal session (cancel, card, invoices); its URL."""
    subscription = subscription_ensure(organization=organization)
    if not stripe_configured() or not subscription.stripe_customer_id:
        raise BillingError("This organization has no Stripe billing account yet.")
    try:
        session = stripe_client().v1.billing_portal.sessions.create(
            params={"customer": subscription.stripe_customer_id, "return_url": return_url}
        )
    except stripe.StripeError as error:
        raise BillingError("Stripe could not open billing; try again in a minute.") from error
    return str(session.url)


def subscription_cancel_at_stripe(*, organization: Organization) -> None:
    """Cancel the organization's Stripe subscription now (organization deletion)."""
    subscription = Subscription.objects.filter(organization=organization).first()
    if subscription is None or not subscription.stripe_subscription_id:
        return
    if subscription.status == SubscriptionStatus.CANCELED or not stripe_configured():
        return
    try:
        stripe_client().v1.subscriptions.cancel(subscription.stripe_subscription_id)
    except stripe.InvalidRequestError:
        logger.info("Stripe subscription %s was already gone", subscription.stripe_subscription_id)
    subscription.status = SubscriptionStatus.CANCELED
    subscription.save(update_fields=["status", "updated_at"])


# --- webhooks -------------------------------------------------------------------


def _event_refs(event_type: str, obj: dict) -> tuple[str, str, str]:
    """(organization id, Stripe subscription id, customer id) an event is about."""
    metadata = obj.get("metadata") or {}
    if event_type == "checkout.session.completed":
        return (
            str(obj.get("client_reference_id") or ""),
            obj.get("subscription") or "",
            obj.get("customer") or "",
        )
    if event_type.startswith("customer.subscription."):
        return (
            str(metadata.get("organization_id") or ""),
            obj.get("id") or "",
            obj.get("customer") or "",
        )
    # Invoices: `subscription` before API version 2025-03-31, then under `parent`.
    subscription_id = obj.get("subscription") or (
        ((obj.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    )
    return "", subscription_id or "", obj.get("customer") or ""


def _local_subscription(org_ref: str, subscription_id: str, customer_id: str):
    query = Subscription.objects.select_for_update().select_related("plan")
    if org_ref.isdigit():
        found = query.filter(organization_id=int(org_ref)).first()
        if found is None and Organization.objects.filter(pk=int(org_ref)).exists():
            subscription_ensure(organization=Organization.objects.get(pk=int(org_ref)))
            found = query.filter(organization_id=int(org_ref)).first()
        if found is not None:
            return found
    if subscription_id:
        found = query.filter(stripe_subscription_id=subscription_id).first()
        if found is not None:
            return found
    if customer_id:
        return query.filter(stripe_customer_id=customer_id).first()
    return None


def _timestamp(value) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def _plan_for_prices(price_ids: list[str], current: Plan) -> Plan:
    by_price = Plan.objects.filter(stripe_price_id__in=[p for p in price_ids if p]).first()
    if by_price is not None:
        return by_price
    if settings.STRIPE_PRICE_PRO and settings.STRIPE_PRICE_PRO in price_ids:
        return Plan.objects.get(slug=PRO)
    return current


def _apply(subscription: Subscription, fresh: dict) -> None:
    """Copy Stripe's subscription object onto ours (it is the whole truth)."""
    status = STATUSES.get(fresh.get("status") or "", SubscriptionStatus.INCOMPLETE)
    current = subscription.stripe_subscription_id
    if current and current != fresh["id"]:
        # Another subscription of the same organization: a late event about an
        # old one never overrides a live new one.
        live = subscription.status not in (
            SubscriptionStatus.CANCELED,
            SubscriptionStatus.INCOMPLETE,
        )
        if live or status in (SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE):
            return
    items = ((fresh.get("items") or {}).get("data")) or []
    price_ids = [(item.get("price") or {}).get("id", "") for item in items]
    period_end = fresh.get("current_period_end") or next(
        (item.get("current_period_end") for item in items if item.get("current_period_end")),
        None,
    )
    subscription.plan = _plan_for_prices(price_ids, subscription.plan)
    subscription.status = status
    subscription.stripe_subscription_id = fresh["id"]
    subscription.stripe_customer_id = fresh.get("customer") or subscription.stripe_customer_id
    subscription.current_period_end = _timestamp(period_end)
    subscription.cancel_at_period_end = bool(fresh.get("cancel_at_period_end"))
    subscription.trial_end = _timestamp(fresh.get("trial_end"))
    subscription.had_trial = True  # one trial per organization
    if status == SubscriptionStatus.PAST_DUE:
        subscription.past_due_since = subscription.past_due_since or timezone.now()
    else:
        subscription.past_due_since = None
    subscription.save()


def _retrieve(subscription_id: str) -> dict | None:
    try:
        return stripe_client().v1.subscriptions.retrieve(subscription_id).to_dict()
    except stripe.InvalidRequestError:
        logger.warning("Stripe has no subscription %s; event ignored", subscription_id)
        return None
    except TRANSIENT as error:
        raise StripeUnavailable(str(error)) from error


def stripe_event_apply(event: dict) -> str:
    """Apply one verified webhook event; returns what happened (for logs/tests).

    Raises StripeUnavailable when Stripe cannot be asked for the subscription:
    the event is not marked processed, so Stripe's retry applies it later."""
    event_id, event_type = event["id"], event["type"]
    if StripeEvent.objects.filter(event_id=event_id).exists():
        return "replay"
    obj = event["data"]["object"]
    org_ref, subscription_id, customer_id = ("", "", "")
    fresh = None
    if event_type in HANDLED:
        org_ref, subscription_id, customer_id = _event_refs(event_type, obj)
        if subscription_id:
            fresh = _retrieve(subscription_id)
    try:
        with transaction.atomic():
            subscription = None
            if event_type in HANDLED:
                subscription = _local_subscription(org_ref, subscription_id, customer_id)
                if subscription is not None and customer_id and not subscription.stripe_customer_id:
                    subscription.stripe_customer_id = customer_id
                    subscription.save(update_fields=["stripe_customer_id", "updated_at"])
                if subscription is not None and fresh is not None:
                    _apply(subscription, fresh)
            StripeEvent.objects.create(
                event_id=event_id,
                type=event_type,
                created=_timestamp(event.get("created")) or timezone.now(),
                organization_id=subscription.organization_id if subscription else None,
            )
    except IntegrityError:
        return "replay"  # the same event, delivered twice at once
    if event_type not in HANDLED:
        return "ignored"
    return "applied" if subscription is not None else "unknown organization"
