"""Settings → Budgets / Alert channels / Alert history: roles and tenancy."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import override_settings
from django.urls import reverse

from alerts.models import AlertChannel, Budget

pytestmark = pytest.mark.django_db


def budget_post(**extra):
    data = {
        "name": "Team cap",
        "scope": "customer",
        "scope_value": "cust-1",
        "period": "week",
        "amount": "25.50",
        "thresholds": "50, 90, 100",
        "action": "block",
        "is_active": "on",
    }
    data.update(extra)
    return data


def test_owner_creates_edits_and_deletes_a_budget(owner_client, org):
    response = owner_client.post(reverse("budget_new"), budget_post())
    assert response.status_code == 302
    budget = Budget.objects.get(organization=org)
    assert (budget.amount, budget.thresholds, budget.period) == (
        Decimal("25.5"),
        [50, 90, 100],
        "week",
    )
    page = owner_client.get(reverse("budgets")).content.decode()
    assert "Team cap" in page and "$0.00 / $25.50" in page and 'value="0"' in page
    response = owner_client.post(reverse("budget_edit", args=[budget.pk]), budget_post(amount="30"))
    assert response.status_code == 302
    budget.refresh_from_db()
    assert budget.amount == Decimal("30")
    owner_client.post(reverse("budget_delete", args=[budget.pk]))
    assert not Budget.objects.exists()


def test_bad_budget_input_is_a_form_error(owner_client):
    response = owner_client.post(reverse("budget_new"), budget_post(scope_value=""))
    assert response.status_code == 400
    assert "Name the customer this budget covers." in response.content.decode()


def test_members_read_but_cannot_write(member_client, org):
    budget = Budget.objects.create(
        organization=org, name="B", scope="organization", period="day", amount=1, action="alert"
    )
    assert member_client.get(reverse("budgets")).status_code == 200
    assert member_client.get(reverse("budget_edit", args=[budget.pk])).status_code == 200
    assert member_client.post(reverse("budget_new"), budget_post()).status_code == 403
    edit = member_client.post(reverse("budget_edit", args=[budget.pk]), budget_post())
    assert edit.status_code == 403
    assert member_client.post(reverse("budget_delete", args=[budget.pk])).status_code == 403
    assert Budget.objects.get().name == "B"


def test_other_organizations_rows_are_404(owner_client, other_org):
    budget = Budget.objects.create(
        organization=other_org,
        name="B",
        scope="organization",
        period="day",
        amount=1,
        action="alert",
    )
    channel = AlertChannel.objects.create(
        organization=other_org, name="c", kind="email", target="a@b.test"
    )
    for url in (
        reverse("budget_edit", args=[budget.pk]),
        reverse("budget_delete", args=[budget.pk]),
        reverse("alert_channel", args=[channel.pk]),
        reverse("alert_channel_delete", args=[channel.pk]),
        reverse("budget_edit", args=[999999]),
    ):
        assert owner_client.get(url).status_code == 404, url
    assert owner_client.post(reverse("alert_channel_test", args=[channel.pk])).status_code == 404
    assert "Globex secret cap" not in owner_client.get(reverse("budgets")).content.decode()


@override_settings(AISPENDTRACK_WEBHOOK_ALLOW_PRIVATE=True)
def test_webhook_channel_shows_its_secret_once_and_a_test_alert_is_queued(
    owner_client, org, django_capture_on_commit_callbacks
):
    response = owner_client.post(
        reverse("alert_channels"),
        {"name": "hook", "kind": "webhook", "target": "http://127.0.0.1:9/x", "is_default": "on"},
    )
    channel = AlertChannel.objects.get(organization=org)
    assert response.status_code == 200 and channel.secret in response.content.decode()
    with django_capture_on_commit_callbacks() as callbacks:
        owner_client.post(reverse("alert_channel_test", args=[channel.pk]))
    assert len(callbacks) == 1
    page = owner_client.get(reverse("alert_channel", args=[channel.pk])).content.decode()
    assert "test" in page and "pending" in page
    assert owner_client.get(reverse("alert_history")).status_code == 200


def test_overview_shows_budgets_near_their_limit_and_refusals_per_hour(
    owner_client, org, other_org
):
    from datetime import UTC, datetime, timedelta

    from analytics.models import RefusalRollup
    from tests.alerts.ingest import ingest
    from tests.analytics.conftest import call

    Budget.objects.create(
        organization=org, name="Nearly spent", scope="organization", period="month",
        amount=Decimal("10"), action="block",
    )  # fmt: skip
    Budget.objects.create(
        organization=org, name="Plenty left", scope="organization", period="month",
        amount=Decimal("1000"), action="alert",
    )  # fmt: skip
    now = datetime.now(UTC)
    ingest([call(org, now - timedelta(minutes=1), cost="8.50")])  # 85 %: warning
    hour = now.replace(minute=0, second=0, microsecond=0)
    RefusalRollup.objects.create(organization=org, hour=hour, reason="budget", count=7)
    RefusalRollup.objects.create(organization=org, hour=hour, reason="plan", count=3)
    RefusalRollup.objects.create(organization=other_org, hour=hour, reason="budget", count=99)
    page = owner_client.get(reverse("dashboard")).content.decode()
    card = page.split('id="budget-attention"')[1].split("</table>")[0]
    assert "Nearly spent" in card and "warning" in card and "Plenty left" not in card
    refusals = page.split('id="refusals"')[1].split("</table>")[0]
    assert '<td class="num">7</td><td class="num">3</td>' in refusals and "99" not in refusals
