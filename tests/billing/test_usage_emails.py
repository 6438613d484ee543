"""Usage emails at 50/75/90 % of the monthly limit, once each per month, to
owners, delivered over SMTP to a local aiosmtpd sink."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from billing.models import Plan, Subscription
from billing.tasks import usage_emails_task
from tests.analytics.conftest import call
from tests.smtp_sink import SmtpSink


@pytest.fixture
def sink():
    sink = SmtpSink().start()
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=sink.port,
        EMAIL_USE_TLS=False,
        AISPENDTRACK_BILLING=True,
    ):
        yield sink
    sink.stop()


@pytest.fixture
def small_plan(org, plans):
    plan = Plan.objects.create(slug="tiny", name="Tiny", monthly_call_limit=20)
    Subscription.objects.create(organization=org, plan=plan)
    return plan


def calls(org, n: int) -> list:
    now = datetime.now(UTC)
    return [call(org, now - timedelta(seconds=i)) for i in range(n)]


def test_thresholds_once_each_per_month_to_owners(
    sink, org, owner, member, small_plan, ingest, other_org
):
    ingest(*calls(org, 9))  # 45 %: nothing
    assert usage_emails_task() == 0
    assert sink.messages == []

    ingest(*calls(org, 1))  # 10 of 20 = 50 %
    assert usage_emails_task() == 1
    [first] = sink.messages
    assert first["X-Rcpt-To"] == "owner@acme.test"  # owners only
    assert "50%" in first["Subject"]
    assert "10 tracked calls" in first.get_payload()

    assert usage_emails_task() == 0  # not twice
    ingest(*calls(org, 8))  # 18 of 20 = 90 %: 75 and 90 crossed at once, one email
    assert usage_emails_task() == 1
    assert "90%" in sink.messages[-1]["Subject"]
    assert usage_emails_task() == 0
    assert len(sink.messages) == 2


def test_unlimited_plans_and_billing_off_send_nothing(sink, org, owner, plans, ingest):
    Subscription.objects.create(organization=org, plan=plans["pro"])
    ingest(*calls(org, 30))
    assert usage_emails_task() == 0
    with override_settings(AISPENDTRACK_BILLING=False):
        assert usage_emails_task() == 0
    assert sink.messages == []
