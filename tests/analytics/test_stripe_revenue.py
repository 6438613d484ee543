"""Revenue from the customer's own Stripe account, against the fake Stripe API server."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.test import override_settings

from analytics.models import RevenueEntry, RevenueSettings
from analytics.stripe_revenue import (
    stripe_key_decrypt,
    stripe_revenue_connect,
    stripe_revenue_sync,
    stripe_revenue_sync_all,
    stripe_unmapped_revenue,
)
from tests.analytics.conftest import call
from tests.billing.fake_stripe import FakeStripe

KEY = "rk_test_51FakeRestrictedKeyAbCd"


def ts(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def fake_stripe():
    fake = FakeStripe().start()
    yield fake
    fake.stop()


@pytest.fixture
def stripe_account(fake_stripe):
    fake_stripe.customers.clear()
    fake_stripe.invoices.clear()
    fake_stripe.failing = False
    with override_settings(STRIPE_API_BASE=fake_stripe.url):
        yield fake_stripe


def test_the_key_is_stored_encrypted_and_shown_by_its_last_4(org):
    stripe_revenue_connect(organization=org, key=KEY, metadata_key="")
    config = RevenueSettings.objects.get(organization=org)
    assert KEY not in config.stripe_key_encrypted
    assert stripe_key_decrypt(config.stripe_key_encrypted) == KEY
    assert (config.stripe_key_last4, config.stripe_metadata_key) == (
        "AbCd",
        "aispendtrack_customer_id",
    )
    with (
        override_settings(SECRET_KEY="another-secret-key-entirely-0123456789"),
        pytest.raises(ValueError, match="cannot be decrypted"),
    ):
        stripe_key_decrypt(config.stripe_key_encrypted)
    with pytest.raises(ValueError, match="restricted key"):
        stripe_revenue_connect(organization=org, key="pk_live_nope", metadata_key="")


def test_paid_invoices_become_revenue_and_a_resync_replaces(org, ingest, stripe_account):
    ingest(call(org, datetime(2026, 11, 3, tzinfo=UTC), customer_id="acme-42"))
    mapped = stripe_account.customer_add(metadata={"aispendtrack_customer_id": "acme-42"})
    plain = stripe_account.customer_add()
    # $49.00 for Nov 1 – Nov 30 (Stripe's period end is Dec 1 00:00, exclusive).
    first = stripe_account.invoice_add(
        customer=mapped["id"],
        amount_paid=4900,
        period_start=ts(date(2026, 11, 1)),
        period_end=ts(date(2026, 12, 1)),
    )
    stripe_account.invoice_add(
        customer=plain["id"],
        amount_paid=1250,
        period_start=ts(date(2026, 11, 10)),
        period_end=ts(date(2026, 11, 10)),
    )
    stripe_account.invoice_add(  # not paid: no revenue
        customer=mapped["id"],
        amount_paid=9900,
        status="open",
        period_start=ts(date(2026, 12, 1)),
        period_end=ts(date(2027, 1, 1)),
    )
    stripe_account.invoice_add(  # another currency: rejected with the reason
        customer=mapped["id"],
        amount_paid=100,
        currency="eur",
        period_start=ts(date(2026, 11, 1)),
        period_end=ts(date(2026, 11, 2)),
    )
    stripe_revenue_connect(organization=org, key=KEY, metadata_key="aispendtrack_customer_id")
    result = stripe_revenue_sync(organization=org)
    assert (result.invoices, result.created, result.updated) == (3, 2, 0)
    assert [r.reason for r in result.rejected] == ["currency EUR: only USD revenue is supported"]
    entry = RevenueEntry.objects.get(organization=org, external_id=first["id"])
    assert (entry.customer_id, entry.amount, entry.source) == ("acme-42", Decimal("49"), "stripe")
    assert (entry.period_start, entry.period_end) == (date(2026, 11, 1), date(2026, 11, 30))
    # The Stripe customer without metadata keeps its Stripe id, and is shown as unmapped.
    (unmapped,) = stripe_unmapped_revenue(organization=org)
    assert (unmapped.customer_id, unmapped.amount) == (plain["id"], Decimal("12.5"))
    # A re-sync (the daily task) replaces; a refund-free change of amount shows up.
    first["amount_paid"] = 5900
    again = stripe_revenue_sync(organization=org)
    assert (again.created, again.updated) == (0, 2)
    assert RevenueEntry.objects.get(external_id=first["id"]).amount == Decimal("59")
    assert RevenueEntry.objects.filter(organization=org).count() == 2
    assert RevenueSettings.objects.get(organization=org).stripe_synced_at is not None
    # The restricted key went to Stripe as the bearer, never anything else.
    assert {r.headers["Authorization"] for r in stripe_account.requests} == {f"Bearer {KEY}"}


def test_an_outage_is_recorded_and_other_tenants_still_sync(org, other_org, stripe_account):
    stripe_revenue_connect(organization=org, key=KEY, metadata_key="")
    stripe_revenue_connect(
        organization=other_org, key="rk_test_other_org_key_9999", metadata_key=""
    )
    stripe_account.failing = True
    assert stripe_revenue_sync_all() == 0
    assert RevenueSettings.objects.get(organization=org).stripe_sync_error
    stripe_account.failing = False
    customer = stripe_account.customer_add()
    stripe_account.invoice_add(
        customer=customer["id"],
        amount_paid=100,
        period_start=ts(date(2026, 11, 1)),
        period_end=ts(date(2026, 11, 2)),
    )
    assert stripe_revenue_sync_all() == 2
    # Each organization gets its own copy of its own account's invoices only.
    assert RevenueEntry.objects.filter(organization=org).count() == 1
    assert RevenueEntry.objects.filter(organization=other_org).count() == 1
    assert RevenueSettings.objects.get(organization=org).stripe_sync_error == ""


def test_settings_page_connects_syncs_and_shows_only_the_last_4(owner_client, org, stripe_account):
    customer = stripe_account.customer_add()
    stripe_account.invoice_add(
        customer=customer["id"],
        amount_paid=2500,
        period_start=ts(date(2026, 11, 1)),
        period_end=ts(date(2026, 11, 2)),
    )
    from analytics.tasks import stripe_revenue_sync_task

    stripe_revenue_sync_task.app.conf.task_always_eager = True
    try:
        response = owner_client.post(
            "/settings/revenue/",
            {"action": "stripe_connect", "stripe_key": KEY, "metadata_key": ""},
        )
    finally:
        stripe_revenue_sync_task.app.conf.task_always_eager = False
    assert response.status_code == 302
    assert RevenueEntry.objects.filter(organization=org, source="stripe").count() == 1
    page = owner_client.get("/settings/revenue/").content.decode()
    assert KEY not in page and "…AbCd" in page
    assert 'id="unmapped-revenue"' in page and customer["id"] in page
    bad = owner_client.post(
        "/settings/revenue/",
        {"action": "stripe_connect", "stripe_key": "hello", "metadata_key": ""},
    )
    assert bad.status_code == 400 and "restricted key" in bad.content.decode()


def test_members_cannot_connect_stripe(member_client, org):
    member_client.post("/settings/revenue/", {"action": "stripe_connect", "stripe_key": KEY})
    assert not RevenueSettings.objects.filter(organization=org).exists()
