"""Budget thresholds fire once per period; SSRF refusals; anomalies from rollups.
Spend comes from the real ledger path (usage_record_batch); expectations are hand sums."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from alerts.anomalies import anomalies_detect
from alerts.events import budget_evaluate
from alerts.models import AlertEvent, Delivery
from alerts.notify import deliver
from alerts.selectors import budget_status
from alerts.services import alert_channel_create, budget_create
from analytics.fold import rollups_fold_until_done
from tests.alerts.ingest import ingest
from tests.analytics.conftest import call

NOW = datetime(2026, 6, 10, 15, 0, tzinfo=UTC)


@pytest.fixture
def hook(org):
    with override_settings(AISPENDTRACK_WEBHOOK_ALLOW_PRIVATE=True):
        return alert_channel_create(
            organization=org,
            data={"name": "hook", "kind": "webhook", "target": "http://127.0.0.1:9/x"},
        )


def make_budget(org, owner, hook, **data):
    values = {
        "name": "Monthly",
        "scope": "organization",
        "period": "month",
        "amount": "10",
        "action": "alert",
        "channels": [hook.pk],
    }
    values.update(data)
    return budget_create(organization=org, created_by=owner, data=values)


def test_each_threshold_fires_once_per_period(org, owner, hook, django_capture_on_commit_callbacks):
    budget = make_budget(org, owner, hook)
    ingest([call(org, NOW - timedelta(hours=2), cost="5.50")])
    rollups_fold_until_done()  # the fold loop, within seconds
    [fifty] = budget_evaluate(organization=org, budget=budget, now=NOW)
    assert (fifty.threshold, fifty.kind, fifty.spend) == (
        50,
        "budget.threshold_crossed",
        Decimal("5.5"),
    )
    assert budget_evaluate(organization=org, budget=budget, now=NOW) == []  # dedup

    ingest([call(org, NOW - timedelta(hours=1), cost="4.00")])  # 9.50: 75 and 90
    rollups_fold_until_done()  # the fold loop, within seconds
    events = budget_evaluate(organization=org, budget=budget, now=NOW)
    assert [e.threshold for e in events] == [75, 90]
    # Only the highest newly crossed threshold is delivered (no burst of alerts).
    assert Delivery.objects.filter(event__threshold=90).count() == 1
    assert Delivery.objects.filter(event__threshold=75).count() == 0

    ingest([call(org, NOW, cost="0.50")])  # exactly 10.00: exceeded
    rollups_fold_until_done()  # the fold loop, within seconds
    [exceeded] = budget_evaluate(organization=org, budget=budget, now=NOW)
    assert exceeded.kind == "budget.exceeded" and exceeded.data["spend"] == "10.0000000000"

    # July: a new period, the thresholds may fire again.
    july = datetime(2026, 7, 1, 12, tzinfo=UTC)
    ingest([call(org, july - timedelta(hours=1), cost="6")])
    rollups_fold_until_done()  # the fold loop, within seconds
    [again] = budget_evaluate(organization=org, budget=budget, now=july)
    assert again.threshold == 50 and again.period_start.isoformat() == "2026-07-01"
    assert AlertEvent.objects.filter(budget=budget).count() == 5


def test_spend_is_the_scope_and_unpriced_calls_are_counted_apart(org, owner, hook):
    budget = make_budget(org, owner, hook, scope="customer", scope_value="c1", amount="2")
    ingest(
        [
            call(org, NOW, cost="1.25", customer_id="c1"),
            call(org, NOW, cost=None, customer_id="c1"),
            call(org, NOW, cost="7.00", customer_id="c2"),
        ]
    )
    rollups_fold_until_done()  # the fold loop, within seconds
    status = budget_status(organization=org, budget=budget, now=NOW + timedelta(minutes=1))
    assert status.spend == Decimal("1.25") and status.unpriced_calls == 1
    assert status.percent_used == Decimal("62.50") and status.status == "ok"


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "https://localhost/x",
        "http://example.com/hook",  # not HTTPS
    ],
)
def test_internal_webhook_urls_are_refused_at_save_time(org, url):
    with pytest.raises(ValidationError) as error:
        alert_channel_create(organization=org, data={"name": "x", "kind": "webhook", "target": url})
    assert "target" in error.value.message_dict


def test_internal_urls_are_refused_again_at_send_time(org, hook):
    """Saved while private addresses were allowed (or DNS changed since): refused when sending."""
    event = AlertEvent.objects.create(organization=org, kind="test", data={})
    outcome = deliver(hook, event)
    assert not outcome.ok and outcome.error.startswith("refused:") and outcome.status_code is None


def test_anomaly_fires_once_above_three_times_the_median(org, owner):
    alert_channel_create(
        organization=org, data={"name": "mail", "kind": "email", "target": "ops@acme.test"}
    )
    today = NOW.replace(hour=12)
    # Previous 7 days: 1, 1, 1, 2, 2, 2, 50 → median 2 (the spike of day -1 does not raise it).
    daily = ["1", "1", "1", "2", "2", "2", "50"]
    records = [
        call(org, today - timedelta(days=7 - n), cost=cost, customer_id="steady")
        for n, cost in enumerate(daily)
    ]
    records.append(call(org, today, cost="6.50", customer_id="steady", feature="chat"))
    ingest(records)
    rollups_fold_until_done()  # the fold loop, within seconds
    assert anomalies_detect(organization=org, now=NOW) == 2  # the organization and "steady"
    event = AlertEvent.objects.filter(kind="anomaly.detected", data__scope="organization").get()
    assert Decimal(event.data["today"]) == Decimal("6.5")
    assert Decimal(event.data["baseline"]) == Decimal("2")
    assert event.data["top"]["customer"] == "steady" and event.data["top"]["feature"] == "chat"
    assert anomalies_detect(organization=org, now=NOW) == 0  # once per scope per day


def test_no_anomaly_on_a_zero_baseline_or_below_the_floor(org):
    ingest([call(org, NOW, cost="500", customer_id="brand-new")])
    rollups_fold_until_done()  # the fold loop, within seconds
    assert anomalies_detect(organization=org, now=NOW) == 0
    ingest(
        [call(org, NOW - timedelta(days=n), cost="0.10", customer_id="tiny") for n in range(1, 8)]
        + [call(org, NOW, cost="0.90", customer_id="tiny")]
    )
    rollups_fold_until_done()  # the fold loop, within seconds
    # "tiny" spent 9× its median today but $0.90 is under the $1 floor.
    assert not AlertEvent.objects.filter(data__scope_value="tiny").exists()


def test_slack_gets_a_readable_message_with_the_numbers(org, owner):
    from alerts.events import budget_event_data
    from alerts.selectors import budget_status
    from tests.alerts.receivers import WebhookReceiver

    with WebhookReceiver() as receiver, override_settings(AISPENDTRACK_WEBHOOK_ALLOW_PRIVATE=True):
        slack = alert_channel_create(
            organization=org, data={"name": "s", "kind": "slack", "target": receiver.url}
        )
        budget = make_budget(org, owner, slack, amount="4")
        ingest([call(org, NOW - timedelta(hours=1), cost="3.10")])
        status = budget_status(organization=org, budget=budget, now=NOW)
        event = AlertEvent.objects.create(
            organization=org, kind="budget.threshold_crossed", budget=budget,
            data=budget_event_data(status, 75),
        )  # fmt: skip
        outcome = deliver(slack, event)
    assert outcome.ok and outcome.status_code == 200
    [received] = receiver.received
    text = received["json"]["text"]
    assert '*Budget "Monthly" at 75% ($3.10 of $4.00)*' in text
    assert "77.50%" in text and "|Open in AiSpendTrack>" in text
    assert not received["valid"]  # Slack requests carry no signature


def test_an_organizations_own_floor_applies(org):
    from alerts.models import AlertSettings

    AlertSettings.objects.create(organization=org, anomaly_floor=Decimal("100"))
    ingest(
        [call(org, NOW - timedelta(days=n), cost="10", customer_id="c") for n in range(1, 8)]
        + [call(org, NOW, cost="50", customer_id="c")]
    )
    assert anomalies_detect(organization=org, now=NOW) == 0  # 5× its median, under $100
    AlertSettings.objects.filter(organization=org).update(anomaly_floor=Decimal("40"))
    assert anomalies_detect(organization=org, now=NOW) == 2  # the organization and "c"
