"""GDPR: export all data, delete an organization, delete an account."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from accounts.models import ApiKey, Membership, Organization, Role, Scope
from accounts.selectors import api_key_authenticate
from accounts.services import api_key_issue
from billing import gdpr
from billing.models import DataExport, OrganizationDeletion, Subscription
from tests.analytics.conftest import call
from tests.factories import MembershipFactory, UserFactory


@pytest.fixture(autouse=True)
def export_dir(tmp_path):
    with override_settings(AISPENDTRACK_EXPORT_DIR=tmp_path / "exports"):
        yield tmp_path / "exports"


def _files(content: bytes) -> dict[str, list[dict]]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {
            name: [json.loads(line) for line in archive.read(name).splitlines()]
            for name in archive.namelist()
        }


def test_export_all_data_zip_is_emailed_and_downloadable_for_24h(
    owner_client, org, other_org, owner, member, api_key, ingest, mailoutbox
):
    now = datetime.now(UTC)
    ingest(call(org, now, customer_id="c1"), call(org, now), call(other_org, now))

    response = owner_client.post("/settings/organization/export/")
    assert response.status_code == 302
    export = DataExport.objects.get(organization=org)
    gdpr.data_export_run(export_id=export.pk, base_url="http://testserver/")

    [mail] = mailoutbox
    assert mail.to == ["owner@acme.test"]
    link = f"http://testserver/settings/organization/exports/{export.pk}/download/"
    assert link in mail.body
    download = owner_client.get(link)
    assert download.status_code == 200
    files = _files(b"".join(download.streaming_content))
    assert files["organization.jsonl"][0]["slug"] == "acme"
    assert {m["email"] for m in files["members.jsonl"]} == {"owner@acme.test", "member@acme.test"}
    [key] = files["accounts_apikey.jsonl"]
    assert key["prefix"] == api_key.row.prefix and key["scopes"] == ["proxy", "read"]
    assert "key_hash" not in key and api_key.row.key_hash not in json.dumps(files)
    events = files["analytics_usageevent.jsonl"]
    assert len(events) == 2 and {e["organization_id"] for e in events} == {org.pk}
    assert sum(r["calls"] for r in files["analytics_hourlyrollup.jsonl"]) == 2

    export.expires_at = timezone.now() - timedelta(seconds=1)
    export.save()
    assert owner_client.get(link).status_code == 404


def test_export_download_is_owners_only_and_never_another_orgs(
    client, owner_client, org, other_org, other_owner, member
):
    other_export = DataExport.objects.create(organization=other_org)
    gdpr.data_export_run(export_id=other_export.pk, base_url="http://testserver")
    url = f"/settings/organization/exports/{other_export.pk}/download/"
    assert owner_client.get(url).status_code == 404  # not yours: same 404 as missing
    client.force_login(member)
    assert client.post("/settings/organization/export/").status_code == 403


def test_alert_channel_secrets_are_not_exported(org, tmp_path):
    from alerts.models import AlertChannel

    AlertChannel.objects.create(
        organization=org,
        name="hook",
        kind="webhook",
        target="https://example.com/h",
        secret="whsec-very-secret",
    )
    AlertChannel.objects.create(
        organization=org, name="slack", kind="slack", target="https://hooks.slack.com/T/B/xyz"
    )
    path = tmp_path / "x.zip"
    gdpr.organization_export_build(organization=org, path=path)
    text = path.read_bytes()
    files = _files(text)
    assert "whsec-very-secret" not in json.dumps(files)
    assert "hooks.slack.com" not in json.dumps(files)
    assert len(files["alerts_alertchannel.jsonl"]) == 2


@override_settings(AISPENDTRACK_BILLING=True)
def test_delete_organization_revokes_keys_removes_members_then_purges_every_row(
    client, owner_client, org, other_org, owner, member, api_key, other_api_key, ingest, plans
):
    Subscription.objects.create(organization=org, plan=plans["pro"])
    ingest(call(org, datetime.now(UTC)), call(other_org, datetime.now(UTC)))
    DataExport.objects.create(organization=org)

    refused = owner_client.post("/settings/organization/delete/", {"confirm_name": "acme"})
    assert refused.status_code == 302 and Membership.objects.filter(organization=org).exists()

    owner_client.post("/settings/organization/delete/", {"confirm_name": "Acme"})

    assert api_key_authenticate(api_key.raw) is None  # the proxy refuses it now
    assert not Membership.objects.filter(organization=org).exists()
    client.force_login(member)
    assert client.get("/dashboard/").status_code == 302  # no organization any more
    deletion = OrganizationDeletion.objects.get(organization=org)
    assert deletion.purge_after - timezone.now() > timedelta(days=29, hours=23)

    call_command("purge_deleted_orgs")  # not due yet
    assert Organization.objects.filter(pk=org.pk).exists()
    call_command("purge_deleted_orgs", "--now")

    for model in gdpr.tenant_models():
        assert not model._default_manager.filter(organization_id=org.pk).exists(), model
    assert not Organization.objects.filter(pk=org.pk).exists()
    # The other organization is untouched.
    assert api_key_authenticate(other_api_key.raw) is not None
    assert Organization.objects.filter(pk=other_org.pk).exists()


def test_due_deletions_are_purged_by_the_beat_task(org, owner):
    from billing.tasks import organizations_purge_deleted_task

    gdpr.organization_delete_request(organization=org, user=owner, confirm_name="Acme")
    OrganizationDeletion.objects.filter(organization=org).update(
        purge_after=timezone.now() - timedelta(seconds=1)
    )
    assert organizations_purge_deleted_task() == 1
    assert not Organization.objects.filter(pk=org.pk).exists()


def test_delete_account_refused_while_only_owner_with_members(client, org, owner, member):
    client.force_login(owner)
    response = client.post("/settings/account/", {"confirm_email": "owner@acme.test"}, follow=True)
    assert "only owner of Acme" in response.content.decode()
    assert type(owner).objects.filter(pk=owner.pk).exists()


def test_delete_account_with_another_owner(client, org, owner, member):
    MembershipFactory(organization=org, role=Role.OWNER, user=UserFactory(email="b@acme.test"))
    client.force_login(owner)
    response = client.post("/settings/account/", {"confirm_email": "owner@acme.test"})
    assert response.status_code == 302
    assert not type(owner).objects.filter(pk=owner.pk).exists()
    assert Organization.objects.filter(pk=org.pk).exists()  # the others keep it
    assert not OrganizationDeletion.objects.exists()


def test_delete_account_of_a_sole_member_deletes_their_organization(client, org, owner):
    _, raw = api_key_issue(organization=org, name="k", scopes=[Scope.PROXY], created_by=owner)
    client.force_login(owner)
    client.post("/settings/account/", {"confirm_email": "owner@acme.test"})
    assert not type(owner).objects.filter(pk=owner.pk).exists()
    assert OrganizationDeletion.objects.filter(organization=org).exists()
    assert not ApiKey.objects.filter(organization=org, revoked_at__isnull=True).exists()
    assert api_key_authenticate(raw) is None


def test_api_export_with_a_manage_key(client, org, other_org, owner, ingest):
    _, raw = api_key_issue(
        organization=org, name="m", scopes=[Scope.READ, Scope.MANAGE], created_by=owner
    )
    _, read_only = api_key_issue(organization=org, name="r", scopes=[Scope.READ], created_by=owner)
    ingest(call(org, datetime.now(UTC)))
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert (
        client.post(
            "/api/organization/export", HTTP_AUTHORIZATION=f"Bearer {read_only}"
        ).status_code
        == 403
    )

    started = client.post("/api/organization/export", **auth)
    assert started.status_code == 202
    body = started.json()
    assert (body["status"], body["download_url"]) == ("pending", None)
    gdpr.data_export_run(export_id=body["id"], base_url="http://testserver")

    status = client.get(f"/api/organization/export/{body['id']}", **auth).json()
    assert status["status"] == "ready"
    download = client.get(status["download_url"], **auth)
    files = _files(b"".join(download.streaming_content))
    assert len(files["analytics_usageevent.jsonl"]) == 1
    other = DataExport.objects.create(organization=other_org)
    assert client.get(f"/api/organization/export/{other.pk}", **auth).status_code == 404
