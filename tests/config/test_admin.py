"""Every admin changelist (and add page, where allowed) loads for staff."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_every_changelist_loads(staff_client, api_key, other_api_key):
    assert admin.site._registry, "no models registered"
    for model in admin.site._registry:
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        response = staff_client.get(url)
        assert response.status_code == 200, f"{url} → {response.status_code}"


@pytest.mark.django_db
def test_key_admin_never_shows_the_hash(staff_client, api_key):
    url = reverse("admin:accounts_apikey_change", args=[api_key.row.pk])
    content = staff_client.get(url).content.decode()
    assert api_key.row.prefix in content
    assert api_key.row.key_hash not in content


@pytest.mark.django_db
def test_admin_revoke_action(staff_client, api_key):
    from accounts.selectors import api_key_authenticate

    assert api_key_authenticate(api_key.raw) is not None
    staff_client.post(
        reverse("admin:accounts_apikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [api_key.row.pk]},
    )
    api_key.row.refresh_from_db()
    assert api_key.row.revoked_at is not None
    assert api_key_authenticate(api_key.raw) is None
