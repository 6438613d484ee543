"""In a real browser: a Free organization hits its hourly limit, sees the
upgrade prompt, upgrades through the fake Stripe Checkout, and the webhook
turns it Pro; the proxy then lets its calls through again."""

from __future__ import annotations

import openai
import pytest
from django.test import override_settings

from accounts.services import organization_bootstrap
from billing.models import Plan, Subscription
from tests.billing.fake_stripe import PRICE_PRO, FakeStripe
from tests.browser import browser_page, screenshot  # noqa: F401 (fixture)
from tests.proxy.conftest import fake_provider  # noqa: F401 (fixture)
from tests.proxy.test_plan_limits import chat, openai_client, plan_gate, start_billing_proxy

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SECRET = "whsec_browser_test"
PASSWORD = "a-long-enough-pass-77"


def test_free_org_hits_the_limit_upgrades_and_turns_pro(
    live_server,
    browser_page,  # noqa: F811
    fake_provider,  # noqa: F811
    plans,
    tmp_path,
    django_db_blocker,
):
    stripe = FakeStripe(
        webhook_url=f"{live_server.url}/billing/stripe/webhook", webhook_secret=SECRET
    )
    stripe.start()
    Plan.objects.filter(slug="free").update(hourly_request_limit=3)  # staff edit, in admin
    settings = override_settings(
        AISPENDTRACK_BILLING=True,
        STRIPE_SECRET_KEY="sk_test_browser",
        STRIPE_WEBHOOK_SECRET=SECRET,
        STRIPE_PRICE_PRO=PRICE_PRO,
        STRIPE_API_BASE=stripe.url,
    )
    settings.enable()
    proxy = start_billing_proxy(fake_provider, tmp_path, django_db_blocker, REDIS_URL="")
    try:
        organization, _, raw = organization_bootstrap(
            org_name="Tiny Startup", email="founder@tiny.test", password=PASSWORD
        )
        assert Subscription.objects.get(organization=organization).plan.slug == "free"
        gate = plan_gate(proxy)
        proxy.call(gate._load_limits())
        client = openai_client(proxy, raw)
        for _ in range(3):
            assert chat(client).status_code == 200
        with pytest.raises(openai.RateLimitError):
            chat(client)
        proxy.events(3)

        page = browser_page
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=login]", "founder@tiny.test")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/dashboard/")
        assert page.is_visible("#limit-reached")
        assert "Hourly limit reached" in page.inner_text("#limit-reached")
        screenshot(page, "billing_limit_reached")

        page.click("#limit-reached >> text=Upgrade to Pro")
        page.wait_for_url("**/settings/billing/")
        page.click("#upgrade")
        page.wait_for_url(f"{stripe.url}/checkout/**")
        page.click("#pay")  # the fake delivers the signed webhooks, then redirects back
        page.wait_for_url("**/settings/billing/?checkout=success")
        screenshot(page, "billing_upgraded")
        assert "Pro plan" in page.inner_text("#plan-card")
        assert page.inner_text("#plan-status") == "trialing"
        assert Subscription.objects.get(organization=organization).plan.slug == "pro"

        proxy.call(gate._load_limits())  # within 2 s on its own
        assert chat(client).status_code == 200
    finally:
        with django_db_blocker.unblock():
            proxy.flush()
            proxy.stop()
        settings.disable()
        stripe.stop()
