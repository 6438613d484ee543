"""accounts.admin: deleting organizations goes through organizations_delete."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import pytest
from django.urls import reverse

from accounts import admin as accounts_admin
from accounts.models import Organization
from analytics.models import UsageEvent
from analytics.records import UsageRecord
from analytics.services import usage_record_batch
from pricing.usage import Usage


def _calls(org, n: int) -> None:
    usage_record_batch(
        [
            UsageRecord(
                request_id=f"req_admin_{org.pk}_{i}",
                organization_id=org.pk,
                api_key_id=None,
                created_at=datetime(2026, 11, 2, 10, i, tzinfo=UTC),
                provider="openai",
                endpoint="/v1/chat/completions",
                status="success",
                model="gpt-4o",
                usage=Usage(input_tokens=10, output_tokens=1),
                cost=None,
            )
            for i in range(n)
        ]
    )


@pytest.mark.django_db(transaction=True)
def test_the_admins_delete_and_bulk_delete_lock_and_cascade(admin_client, org, other_org):
    third = Organization.objects.create(name="Third", slug="third")
    for each in (org, other_org, third):
        _calls(each, 3)
    spy = mock.patch.object(
        accounts_admin, "organizations_delete", wraps=accounts_admin.organizations_delete
    )
    with spy as deleting:
        url = reverse("admin:accounts_organization_delete", args=[org.pk])
        assert admin_client.post(url, {"post": "yes"}).status_code == 302
        changelist = reverse("admin:accounts_organization_changelist")
        action = {"action": "delete_selected", "_selected_action": [third.pk], "post": "yes"}
        assert admin_client.post(changelist, action).status_code == 302
    assert deleting.call_count == 2
    assert set(Organization.objects.values_list("pk", flat=True)) == {other_org.pk}
    assert set(UsageEvent.objects.values_list("organization_id", flat=True)) == {other_org.pk}
