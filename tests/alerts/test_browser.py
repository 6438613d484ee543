"""A person in a real browser: create a webhook channel and a budget, send a
test alert, and see it delivered (a real Celery worker, a local receiver that
checks the signature)."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.test import override_settings

from alerts.models import Budget
from config.celery import app
from tests.alerts.receivers import WebhookReceiver
from tests.browser import browser_page, screenshot  # noqa: F401 (fixture)
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_budget_webhook_channel_and_test_alert(live_server, browser_page, owner, org):  # noqa: F811
    page = browser_page
    with (
        WebhookReceiver() as receiver,
        override_settings(AISPENDTRACK_WEBHOOK_ALLOW_PRIVATE=True),
        start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10),
    ):
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=login]", owner.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/dashboard/")

        page.click("nav >> text=Alert channels")
        page.fill("input[name=name]", "Ops webhook")
        page.select_option("select[name=kind]", "webhook")
        page.fill("input[name=target]", receiver.url)
        page.click("button:has-text('Add channel')")
        receiver.secret = page.inner_text("#channel-secret").strip()
        assert receiver.secret.startswith("whsec_")

        page.click("nav >> text=Budgets")
        page.click("#new-budget")
        page.fill("input[name=name]", "Big customer")
        page.select_option("select[name=scope]", "customer")
        page.fill("input[name=scope_value]", "cust-42")
        page.select_option("select[name=period]", "month")
        page.fill("input[name=amount]", "250")
        page.select_option("select[name=action]", "block")
        page.check("text=Ops webhook")
        page.click("button:has-text('Save budget')")
        page.wait_for_selector("#budgets-table >> text=Big customer")
        screenshot(page, "budgets")
        budget = Budget.objects.get(organization=org)
        assert (budget.scope_value, budget.action) == ("cust-42", "block")
        assert [c.name for c in budget.channels.all()] == ["Ops webhook"]

        page.click("nav >> text=Alert channels")
        page.click("#channels-table >> text=Ops webhook")
        with page.expect_navigation():  # the POST and its redirect land before we reload
            page.click("#send-test")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            page.reload()
            if page.is_visible("#deliveries-table tr[data-status=delivered]"):
                break
            time.sleep(0.5)
        screenshot(page, "alert_channel_delivery")
        assert page.is_visible("#deliveries-table tr[data-status=delivered]")

    [received] = receiver.received
    assert received["valid"] and received["json"]["type"] == "test"
