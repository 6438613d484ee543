"""Plans, the plan in force, and GET /api/plan in both billing modes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import override_settings

from accounts.services import organization_create
from billing.models import Plan, Subscription, SubscriptionStatus
from billing.selectors import plan_effective, plan_in_force
from tests.analytics.conftest import call
from tests.factories import UserFactory

billing_on = override_settings(AISPENDTRACK_BILLING=True)
billing_off = override_settings(AISPENDTRACK_BILLING=False)

# The issue's table, typed in by hand: the oracle for the seed.
ISSUE_TABLE = {
    "free": (Decimal("0.00"), 10_000, 1_000, 7, False, 0),
    "pro": (Decimal("149.00"), None, 10_000, 90, True, 14),
    "enterprise": (None, None, None, 365, True, 0),
}


@pytest.mark.django_db
def test_migration_seeds_the_issue_table():
    for slug, (price, monthly, hourly, retention, features, trial) in ISSUE_TABLE.items():
        plan = Plan.objects.get(slug=slug)
        assert plan.price_usd_month == price
        assert plan.monthly_call_limit == monthly
        assert plan.hourly_request_limit == hourly
        assert plan.retention_days == retention
        assert (plan.export, plan.api, plan.alerts) == (features, features, features)
        assert plan.trial_days == trial
    self_hosted = Plan.objects.get(slug="self-hosted")
    assert self_hosted.monthly_call_limit is None and self_hosted.hourly_request_limit is None


@billing_on
@pytest.mark.django_db
def test_new_organization_starts_on_free_with_billing_on():
    organization = organization_create(name="Newco", owner=UserFactory())
    assert Subscription.objects.get(organization=organization).plan.slug == "free"
    assert plan_effective(organization=organization).plan.slug == "free"


@billing_off
@pytest.mark.django_db
def test_billing_off_puts_everyone_on_self_hosted_even_a_free_subscription():
    organization = organization_create(name="Newco", owner=UserFactory())
    Subscription.objects.filter(organization=organization).update(
        plan=Plan.objects.get(slug="free")
    )
    effective = plan_effective(organization=organization)
    assert effective.plan.slug == "self-hosted"
    assert all(effective.has_feature(name) for name in ("api", "export", "alerts"))


def _subscription(status, **fields):
    pro = Plan.objects.get(slug="pro")
    return Subscription(plan=pro, status=status, **fields)


NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "fields", "expected"),
    [
        (SubscriptionStatus.ACTIVE, {}, "pro"),
        (SubscriptionStatus.TRIALING, {}, "pro"),
        (SubscriptionStatus.INCOMPLETE, {}, "free"),
        # Past due: Pro for 7 days from when it fell due, then Free.
        (SubscriptionStatus.PAST_DUE, {"past_due_since": NOW - timedelta(days=6, hours=23)}, "pro"),
        (SubscriptionStatus.PAST_DUE, {"past_due_since": NOW - timedelta(days=7)}, "free"),
        # Cancelled: Pro until the end of the paid period, then Free.
        (SubscriptionStatus.CANCELED, {"current_period_end": NOW + timedelta(seconds=1)}, "pro"),
        (SubscriptionStatus.CANCELED, {"current_period_end": NOW}, "free"),
        (SubscriptionStatus.CANCELED, {}, "free"),
    ],
)
def test_plan_in_force(status, fields, expected):
    free = Plan.objects.get(slug="free")
    effective = plan_in_force(_subscription(status, **fields), free=free, now=NOW)
    assert effective.plan.slug == expected
    assert effective.status == status


PLAN_KEYS = {
    "organization",
    "plan",
    "status",
    "trial_end",
    "current_period_end",
    "limits",
    "usage",
}


@billing_on
def test_api_plan_on_free_counts_this_months_calls(client, org, other_org, api_key, ingest):
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    ingest(
        call(org, now),
        call(org, now),
        call(org, month_start),  # the first second of the month counts
        call(org, month_start - timedelta(seconds=1)),  # last month: not counted
        call(other_org, now),  # another organization: not counted
    )
    response = client.get("/api/plan", HTTP_AUTHORIZATION=f"Bearer {api_key.raw}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == PLAN_KEYS
    assert body["organization"] == {"id": org.pk, "slug": "acme", "name": "Acme"}
    assert body["plan"] == "free"
    assert body["status"] == "active"
    assert body["trial_end"] is None and body["current_period_end"] is None
    limits = {"monthly_calls": 10_000, "hourly_requests": 1_000, "retention_days": 7}
    assert body["limits"] == limits
    expected_hour = 2 + (1 if now - month_start < timedelta(hours=1) else 0)
    assert body["usage"] == {"calls_this_month": 3, "requests_this_hour": expected_hour}


@billing_off
@override_settings(AISPENDTRACK_RETENTION_DAYS=30)
def test_api_plan_with_billing_off_is_self_hosted(owner_client, org):
    body = owner_client.get("/api/plan").json()
    assert body["plan"] == "self-hosted"
    assert body["limits"] == {"monthly_calls": None, "hourly_requests": None, "retention_days": 30}


@billing_on
def test_api_plan_shows_trial_and_period_end(owner_client, org):
    Subscription.objects.create(
        organization=org,
        plan=Plan.objects.get(slug="pro"),
        status=SubscriptionStatus.TRIALING,
        trial_end=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
        current_period_end=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
    )
    body = owner_client.get("/api/plan").json()
    assert (body["plan"], body["status"]) == ("pro", "trialing")
    assert body["trial_end"] == "2026-12-01T09:30:00Z"
    assert body["current_period_end"] == "2026-12-01T09:30:00Z"
    assert body["limits"]["hourly_requests"] == 10_000


def test_api_plan_needs_a_key_or_session(client, db):
    assert client.get("/api/plan").status_code in (401, 403)


@billing_on
def test_staff_put_an_organization_on_enterprise_in_admin(client, org, plans, django_user_model):
    staff = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(staff)
    subscription = Subscription.objects.create(organization=org, plan=plans["free"])
    url = f"/admin/billing/subscription/{subscription.pk}/change/"
    assert client.get(url).status_code == 200
    response = client.post(
        url,
        {
            "organization": org.pk,
            "plan": plans["enterprise"].pk,
            "status": "active",
            "had_trial": "",
            "cancel_at_period_end": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    effective = plan_effective(organization=org)
    assert effective.plan.slug == "enterprise" and effective.retention_days == 365
    events = client.get("/admin/billing/stripeevent/")
    assert events.status_code == 200 and "Add Stripe event" not in events.content.decode()
