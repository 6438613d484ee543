"""Stripe Checkout, Portal and webhooks against the fake Stripe API server."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from accounts.models import Role
from billing.models import Plan, StripeEvent, Subscription, SubscriptionStatus
from billing.selectors import plan_effective
from tests.billing.fake_stripe import PRICE_PRO, FakeStripe, event, sign
from tests.factories import MembershipFactory, UserFactory

SECRET = "whsec_test_0123456789"
WEBHOOK = "/billing/stripe/webhook"


@pytest.fixture(scope="module")
def fake_stripe():
    fake = FakeStripe(webhook_secret=SECRET).start()
    yield fake
    fake.stop()


@pytest.fixture
def stripe_on(fake_stripe, plans):
    with override_settings(
        AISPENDTRACK_BILLING=True,
        STRIPE_SECRET_KEY="sk_test_fake",
        STRIPE_WEBHOOK_SECRET=SECRET,
        STRIPE_PRICE_PRO=PRICE_PRO,
        STRIPE_API_BASE=fake_stripe.url,
    ):
        fake_stripe.requests.clear()
        fake_stripe.failing = False
        yield fake_stripe


def post_event(client, payload: dict, *, secret: str = SECRET, timestamp: int | None = None):
    body = json.dumps(payload).encode()
    return client.post(
        WEBHOOK,
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(body, secret, timestamp),
    )


def subscription_of(org) -> Subscription:
    return Subscription.objects.select_related("plan").get(organization=org)


def _paid_checkout(client, org, fake) -> tuple[dict, dict]:
    """An owner upgrades; the fake customer pays; returns (session, subscription)."""
    response = client.post("/settings/billing/upgrade/")
    session_id = response["Location"].rsplit("/", 1)[1]
    return fake.checkout_complete(session_id)


# --- Checkout and Portal ----------------------------------------------------------


def test_upgrade_creates_a_checkout_session_with_trial_and_org_reference(
    owner_client, org, stripe_on
):
    response = owner_client.post("/settings/billing/upgrade/")

    assert response.status_code == 302
    [customer_call] = stripe_on.asked("POST", "/v1/customers")
    assert customer_call.params["email"] == "owner@acme.test"
    assert customer_call.params["metadata[organization_id]"] == str(org.pk)
    [session_call] = stripe_on.asked("POST", "/v1/checkout/sessions")
    params = session_call.params
    assert params["mode"] == "subscription"
    assert params["line_items[0][price]"] == PRICE_PRO
    assert params["line_items[0][quantity]"] == "1"
    assert params["client_reference_id"] == str(org.pk)
    assert params["subscription_data[trial_period_days]"] == "14"
    customer_id = subscription_of(org).stripe_customer_id
    assert params["customer"] == customer_id and customer_id.startswith("cus_")
    assert params["success_url"].endswith("/settings/billing/?checkout=success")
    session_id = list(stripe_on.sessions)[-1]
    assert response["Location"] == f"{stripe_on.url}/checkout/{session_id}"
    assert session_call.headers["Authorization"] == "Bearer sk_test_fake"


def test_second_checkout_reuses_the_customer_and_offers_no_second_trial(
    client, owner_client, org, stripe_on
):
    session, subscription = _paid_checkout(owner_client, org, stripe_on)
    assert post_event(client, event("checkout.session.completed", session)).status_code == 200
    stripe_on.requests.clear()

    owner_client.post("/settings/billing/upgrade/")

    assert stripe_on.asked("POST", "/v1/customers") == []
    [session_call] = stripe_on.asked("POST", "/v1/checkout/sessions")
    assert session_call.params["customer"] == subscription["customer"]
    assert "subscription_data[trial_period_days]" not in session_call.params


def test_manage_billing_opens_the_portal(owner_client, org, stripe_on):
    owner_client.post("/settings/billing/upgrade/")
    response = owner_client.post("/settings/billing/portal/")
    assert response.status_code == 302
    assert response["Location"].startswith(f"{stripe_on.url}/portal/bps_")
    [portal_call] = stripe_on.asked("POST", "/v1/billing_portal/sessions")
    assert portal_call.params["customer"] == subscription_of(org).stripe_customer_id
    assert portal_call.params["return_url"].endswith("/settings/billing/")


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER])
def test_only_owners_manage_billing(client, org, stripe_on, role):
    user = MembershipFactory(organization=org, role=role, user=UserFactory()).user
    client.force_login(user)
    assert client.get("/settings/billing/").status_code == 403
    assert client.post("/settings/billing/upgrade/").status_code == 403
    assert stripe_on.requests == []


def test_billing_page_shows_plan_meter_and_upgrade(owner_client, org, stripe_on):
    page = owner_client.get("/settings/billing/").content.decode()
    assert "Free plan" in page
    assert 'id="usage-meter"' in page
    assert "/ 10,000" in page and "/ 1,000" in page
    assert "Upgrade to Pro" in page and "$149/month" in page


@override_settings(AISPENDTRACK_BILLING=False)
def test_billing_off_pages_never_mention_prices(owner_client, org, plans):
    for url in ("/settings/billing/", "/dashboard/", "/requests/"):
        response = owner_client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert "Upgrade" not in page and "$149" not in page and "Free plan" not in page, url


# --- webhooks ---------------------------------------------------------------------


def test_checkout_completed_turns_the_organization_pro_on_trial(
    client, owner_client, org, stripe_on
):
    session, subscription = _paid_checkout(owner_client, org, stripe_on)

    response = post_event(client, event("checkout.session.completed", session))

    assert response.status_code == 200
    local = subscription_of(org)
    assert (local.plan.slug, local.status) == ("pro", SubscriptionStatus.TRIALING)
    assert local.stripe_subscription_id == subscription["id"]
    assert local.trial_end == datetime.fromtimestamp(subscription["trial_end"], UTC)
    period_end = subscription["items"]["data"][0]["current_period_end"]
    assert local.current_period_end == datetime.fromtimestamp(period_end, UTC)
    assert plan_effective(organization=org).plan.slug == "pro"
    assert StripeEvent.objects.filter(organization=org).count() == 1
    # The state came from a fresh retrieve of the subscription.
    assert stripe_on.asked("GET", f"/v1/subscriptions/{subscription['id']}")


@pytest.mark.parametrize(
    ("secret", "age"), [("whsec_wrong", 0), (SECRET, 301)], ids=["wrong-secret", "stale"]
)
def test_bad_signature_is_400_and_changes_nothing(
    client, owner_client, org, stripe_on, secret, age
):
    session, _ = _paid_checkout(owner_client, org, stripe_on)
    payload = event("checkout.session.completed", session)

    response = post_event(client, payload, secret=secret, timestamp=int(time.time()) - age)

    assert response.status_code == 400
    assert subscription_of(org).plan.slug == "free"
    assert StripeEvent.objects.count() == 0


def test_unsigned_and_garbage_bodies_are_400(client, stripe_on):
    assert client.post(WEBHOOK, data=b"{}", content_type="application/json").status_code == 400
    body = b"not json"
    response = client.post(
        WEBHOOK,
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(body, SECRET),
    )
    assert response.status_code == 400


def test_a_replayed_event_changes_nothing(client, owner_client, org, stripe_on):
    session, subscription = _paid_checkout(owner_client, org, stripe_on)
    completed = event("checkout.session.completed", session)
    assert post_event(client, completed).status_code == 200
    # Meanwhile the subscription was cancelled; a replay of the old event must not re-apply.
    stripe_on.subscription_update(subscription["id"], status="canceled")
    stripe_on.requests.clear()

    response = post_event(client, completed)

    assert response.status_code == 200
    assert response.content == b"replay"
    assert subscription_of(org).status == SubscriptionStatus.TRIALING
    assert stripe_on.requests == []  # not even a retrieve
    assert StripeEvent.objects.filter(event_id=completed["id"]).count() == 1


def test_updated_before_created_ends_in_the_latest_state(client, owner_client, org, stripe_on):
    _, created_snapshot = _paid_checkout(owner_client, org, stripe_on)
    period_end = int(time.time()) + 20 * 86400
    updated_snapshot = stripe_on.subscription_update(
        created_snapshot["id"],
        status="active",
        cancel_at_period_end=True,
        trial_end=None,
        current_period_end=period_end,
    )
    now = int(time.time())

    assert (
        post_event(client, event("customer.subscription.updated", updated_snapshot, created=now))
    ).status_code == 200
    # `created` arrives last, carrying the older object (trialing, not cancelling).
    assert (
        post_event(
            client, event("customer.subscription.created", created_snapshot, created=now - 5)
        )
    ).status_code == 200

    local = subscription_of(org)
    assert (local.status, local.cancel_at_period_end) == (SubscriptionStatus.ACTIVE, True)
    assert local.current_period_end == datetime.fromtimestamp(period_end, UTC)
    assert local.trial_end is None


def test_two_events_in_the_same_second_payment_failed_then_recovered(
    client, owner_client, org, stripe_on
):
    session, subscription = _paid_checkout(owner_client, org, stripe_on)
    post_event(client, event("checkout.session.completed", session))
    second = int(time.time())
    failed_sub = stripe_on.subscription_update(subscription["id"], status="past_due")
    invoice = {"id": "in_fake1", "object": "invoice", "customer": subscription["customer"]}
    invoice["parent"] = {"subscription_details": {"subscription": subscription["id"]}}
    # Both events carry the same timestamp; the stale `updated` (active) lands second.
    stale = dict(failed_sub, status="active")
    post_event(client, event("invoice.payment_failed", invoice, created=second))
    post_event(client, event("customer.subscription.updated", stale, created=second))

    local = subscription_of(org)
    assert local.status == SubscriptionStatus.PAST_DUE
    assert local.past_due_since is not None
    effective = plan_effective(organization=org)
    assert effective.plan.slug == "pro"  # within the 7-day grace
    assert effective.grace_until == local.past_due_since + timedelta(days=7)
    assert plan_effective(organization=org, now=effective.grace_until).plan.slug == "free"

    stripe_on.subscription_update(subscription["id"], status="active")
    post_event(client, event("invoice.paid", invoice, created=second))
    local = subscription_of(org)
    assert (local.status, local.past_due_since) == (SubscriptionStatus.ACTIVE, None)


def test_past_due_shows_a_banner(client, owner_client, org, stripe_on):
    session, subscription = _paid_checkout(owner_client, org, stripe_on)
    stripe_on.subscription_update(subscription["id"], status="past_due")
    post_event(client, event("checkout.session.completed", session))
    page = owner_client.get("/dashboard/").content.decode()
    assert 'id="billing-banner"' in page and "payment failed" in page


def test_cancellation_keeps_pro_until_the_period_ends(client, owner_client, org, stripe_on):
    session, subscription = _paid_checkout(owner_client, org, stripe_on)
    post_event(client, event("checkout.session.completed", session))
    period_end = int(time.time()) + 3 * 86400
    deleted = stripe_on.subscription_update(
        subscription["id"], status="canceled", current_period_end=period_end
    )

    assert post_event(client, event("customer.subscription.deleted", deleted)).status_code == 200

    assert subscription_of(org).status == SubscriptionStatus.CANCELED
    end = datetime.fromtimestamp(period_end, UTC)
    assert plan_effective(organization=org, now=end - timedelta(seconds=1)).plan.slug == "pro"
    assert plan_effective(organization=org, now=end).plan.slug == "free"


def test_stripe_outage_answers_503_so_stripe_retries(client, owner_client, org, stripe_on):
    session, _ = _paid_checkout(owner_client, org, stripe_on)
    completed = event("checkout.session.completed", session)
    stripe_on.failing = True

    assert post_event(client, completed).status_code == 503
    assert StripeEvent.objects.count() == 0
    assert subscription_of(org).plan.slug == "free"

    stripe_on.failing = False  # Stripe redelivers the same event later
    assert post_event(client, completed).status_code == 200
    assert subscription_of(org).plan.slug == "pro"


def test_events_for_another_organization_never_touch_this_one(
    client, owner_client, org, other_org, stripe_on
):
    session, subscription = _paid_checkout(owner_client, org, stripe_on)
    post_event(client, event("checkout.session.completed", session))
    assert not Subscription.objects.filter(organization=other_org, plan__slug="pro").exists()
    assert Plan.objects.get(slug="pro").subscriptions.get().organization == org


def test_unhandled_event_types_are_acknowledged(client, stripe_on):
    response = post_event(client, event("customer.created", {"id": "cus_x", "object": "customer"}))
    assert response.status_code == 200 and response.content == b"ignored"
