"""A real Celery worker evaluates budgets and delivers alerts: email to a local
SMTP sink, a signed webhook to a local receiver that fails once with a 500."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.test import override_settings
from django.utils import timezone

from alerts.models import AlertEvent, Delivery, DeliveryStatus
from alerts.services import alert_channel_create, budget_create
from alerts.tasks import budgets_evaluate_task
from analytics.fold import rollups_fold_until_done
from config.celery import app
from tests.alerts.ingest import ingest
from tests.alerts.receivers import SmtpSink, WebhookReceiver
from tests.analytics.conftest import call

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_worker_fires_once_and_delivers_with_retries(org, owner):
    with (
        SmtpSink() as smtp,
        WebhookReceiver(fail_first=1) as receiver,
        override_settings(
            AISPENDTRACK_WEBHOOK_ALLOW_PRIVATE=True,
            AISPENDTRACK_ALERT_RETRY_BASE_SECONDS=0.5,
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=smtp.port,
            EMAIL_USE_TLS=False,
            AISPENDTRACK_PUBLIC_URL="https://spend.example.com",
        ),
    ):
        hook = alert_channel_create(
            organization=org, data={"name": "hook", "kind": "webhook", "target": receiver.url}
        )
        receiver.secret = hook.secret
        mail = alert_channel_create(
            organization=org,
            data={"name": "ops", "kind": "email", "target": "ops@acme.test, cfo@acme.test"},
        )
        budget = budget_create(
            organization=org,
            created_by=owner,
            data={
                "name": "Daily cap",
                "scope": "organization",
                "period": "day",
                "amount": "2",
                "action": "alert",
                "channels": [hook.pk, mail.pk],
            },
        )
        ingest([call(org, timezone.now() - timedelta(seconds=5), cost="1.50")])
        rollups_fold_until_done()  # the fold loop, within seconds

        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            budgets_evaluate_task.delay()
            assert wait_for(
                lambda: Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 2
            ), list(Delivery.objects.values("status", "attempts", "last_error"))
            budgets_evaluate_task.delay()  # a second evaluation in the same period
            time.sleep(0.5)  # nothing to wait for: it must not fire again
            budgets_evaluate_task.apply().get()

    # 1.50 of 2.00: 50 % and 75 % crossed at once, both recorded, the higher one sent.
    fifty, event = AlertEvent.objects.filter(budget=budget).order_by("threshold")
    assert (fifty.threshold, fifty.deliveries.count()) == (50, 0)
    assert (event.threshold, event.kind) == (75, "budget.threshold_crossed")
    # The webhook: a 500, then retried with backoff; both bodies signed; the same event id.
    assert [r["status"] for r in receiver.received] == [500, 200]
    assert all(r["valid"] for r in receiver.received)
    first, second = (r["json"] for r in receiver.received)
    assert first == second and first["id"] == str(event.uid)
    assert first["type"] == "budget.threshold_crossed"
    assert set(first) == {"id", "type", "created", "organization", "data"}
    assert first["data"]["budget"]["name"] == "Daily cap" and first["data"]["threshold"] == 75
    hook_delivery = Delivery.objects.get(channel=hook)
    assert (hook_delivery.attempts, hook_delivery.last_status_code) == (2, 200)
    # The email: one message to both addresses, with the numbers.
    [message] = smtp.messages
    assert sorted(message.rcpt_tos) == ["cfo@acme.test", "ops@acme.test"]
    text = message.content.decode()
    assert "$1.50 of $2.00" in text and "https://spend.example.com/settings/budgets/" in text
