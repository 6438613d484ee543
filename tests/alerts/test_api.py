"""/api/budgets, /api/alert-channels, /api/alerts: fields, scopes, tenancy."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from accounts.keys import hash_secret
from accounts.models import ApiKey, Scope
from accounts.services import api_key_issue
from alerts.models import AlertChannel, Budget
from tests.alerts.ingest import ingest
from tests.analytics.conftest import call

pytestmark = pytest.mark.django_db

BUDGET_FIELDS = {
    "id", "name", "scope", "scope_value", "period", "amount", "thresholds", "action",
    "channels", "is_active", "spend", "percent_used", "projected", "period_start", "period_end",
    "status",
}  # fmt: skip


@pytest.fixture
def manage_key(org, owner):
    _row, raw = api_key_issue(
        organization=org, name="m", scopes=[Scope.READ, Scope.MANAGE], created_by=owner
    )
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture
def read_key(api_key):
    return {"HTTP_AUTHORIZATION": f"Bearer {api_key.raw}"}


def test_budget_crud_with_a_manage_key(client, org, manage_key):
    ingest([call(org, timezone.now() - timedelta(minutes=5), cost="3.00")])
    body = {"name": "Org", "scope": "organization", "period": "month", "amount": "4",
            "action": "block"}  # fmt: skip
    created = client.post("/api/budgets", body, content_type="application/json", **manage_key)
    assert created.status_code == 201, created.content
    data = created.json()
    assert set(data) == BUDGET_FIELDS
    assert data["thresholds"] == [50, 75, 90, 100] and data["channels"] == []
    assert Decimal(data["spend"]) == Decimal("3") and Decimal(data["percent_used"]) == 75
    assert data["status"] == "ok" and data["period_end"].endswith("Z")

    patched = client.patch(
        f"/api/budgets/{data['id']}", {"amount": "3"}, content_type="application/json",
        **manage_key,
    )  # fmt: skip
    assert patched.json()["status"] == "exceeded" and patched.json()["name"] == "Org"
    [listed] = client.get("/api/budgets", **manage_key).json()
    assert listed["id"] == data["id"]
    assert client.delete(f"/api/budgets/{data['id']}", **manage_key).status_code == 204
    assert not Budget.objects.exists()


def test_bad_budget_input_is_a_400_with_field_messages(client, manage_key):
    response = client.post(
        "/api/budgets",
        {"name": "", "scope": "planet", "period": "day", "amount": "-1", "action": "block",
         "thresholds": [0]},
        content_type="application/json",
        **manage_key,
    )  # fmt: skip
    assert response.status_code == 400
    assert {"name", "scope", "amount", "thresholds"} <= set(response.json())
    assert client.post("/api/budgets", "[]", content_type="application/json",
                       **manage_key).status_code == 400  # fmt: skip


def test_a_read_key_reads_but_cannot_write(client, org, read_key):
    Budget.objects.create(
        organization=org, name="B", scope="organization", period="day", amount=1, action="alert"
    )
    assert client.get("/api/budgets", **read_key).status_code == 200
    body = {"name": "x", "scope": "organization", "period": "day", "amount": "1", "action": "alert"}
    assert client.post("/api/budgets", body, content_type="application/json",
                       **read_key).status_code == 403  # fmt: skip


@override_settings(AISPENDTRACK_WEBHOOK_ALLOW_PRIVATE=True)
def test_webhook_secret_is_returned_once(client, manage_key):
    body = {"name": "hook", "kind": "webhook", "target": "http://127.0.0.1:9/x"}
    created = client.post("/api/alert-channels", body, content_type="application/json",
                          **manage_key).json()  # fmt: skip
    assert created["secret"].startswith("whsec_")
    assert set(created) == {"id", "name", "kind", "target", "is_active", "secret"}
    again = client.get(f"/api/alert-channels/{created['id']}", **manage_key).json()
    assert set(again) == {"id", "name", "kind", "target", "is_active"}
    assert client.get("/api/alerts", **manage_key).json() == []


def test_other_organizations_ids_are_404(client, other_org, manage_key):
    budget = Budget.objects.create(
        organization=other_org, name="B", scope="organization", period="day", amount=1,
        action="alert",
    )  # fmt: skip
    channel = AlertChannel.objects.create(
        organization=other_org, name="c", kind="email", target="a@b.test"
    )
    for url in (f"/api/budgets/{budget.pk}", f"/api/alert-channels/{channel.pk}"):
        assert client.get(url, **manage_key).status_code == 404
        assert client.patch(url, {}, content_type="application/json",
                            **manage_key).status_code == 404  # fmt: skip
        assert client.delete(url, **manage_key).status_code == 404
    # Someone else's channel cannot be attached to one's budget either.
    body = {"name": "x", "scope": "organization", "period": "day", "amount": "1",
            "action": "alert", "channels": [channel.pk]}  # fmt: skip
    response = client.post("/api/budgets", body, content_type="application/json", **manage_key)
    assert response.status_code == 400 and "channels" in response.json()
    assert Budget.objects.count() == 1


def test_schema_documents_the_endpoints(client, owner_client):
    schema = owner_client.get("/api/schema?format=json").json()
    for path in ("/api/budgets", "/api/budgets/{budget_id}", "/api/alert-channels", "/api/alerts"):
        assert path in schema["paths"], path


def test_bootstrap_org_scopes(capsys):
    call_command("bootstrap_org", org="Boot", email="b@boot.test", scopes="proxy,read,manage")
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    assert sorted(ApiKey.objects.get(key_hash=hash_secret(raw)).scopes) == [
        "manage",
        "proxy",
        "read",
    ]
