"""Staff manage prices in the admin: edits become source=admin, sync and
re-price are one click away, and price history is visible per model."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from analytics.models import Status, UsageEvent
from analytics.records import UsageRecord
from analytics.services import usage_record_batch
from pricing import engine
from pricing.models import ModelPrice, PriceSource, Provider
from pricing.services import prices_sync
from pricing.usage import Usage
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(
        UserFactory(email="staff@aispendtrack.test", is_staff=True, is_superuser=True)
    )
    return client


def changelist(**query):
    return reverse("admin:pricing_modelprice_changelist"), query


def test_changelist_search_filters_and_history(staff_client):
    prices_sync()
    url = reverse("admin:pricing_modelprice_changelist")
    assert staff_client.get(url, {"q": "gpt-4o-mini"}).status_code == 200
    assert staff_client.get(url, {"source__exact": "admin"}).status_code == 200
    o3 = ModelPrice.objects.filter(model_id="o3", provider__slug="openai").first()
    history = staff_client.get(url, {"provider": o3.provider_id, "model_id": "o3"})
    assert history.status_code == 200
    assert "2 model prices" in history.content.decode()
    page = staff_client.get(reverse("admin:pricing_modelprice_change", args=[o3.pk]))
    assert "Price history of this model" in page.content.decode()
    assert "2025-06-10" in page.content.decode()


def test_an_edit_becomes_an_admin_price(staff_client):
    prices_sync()
    row = ModelPrice.objects.get(provider__slug="openai", model_id="gpt-4o")
    form = {
        "provider": row.provider_id,
        "model_id": "gpt-4o",
        "name": row.name,
        "effective_from_0": "2000-01-01",
        "effective_from_1": "00:00:00",
        "time_window": "",
        "input": "2.25",
        "output": "10",
        "cache_read": "1.25",
        "tiers": "[]",
        "match_rules": '{"equals": "gpt-4o"}',
        "match_order": "1",
        "notes": "negotiated list price",
    }
    response = staff_client.post(reverse("admin:pricing_modelprice_change", args=[row.pk]), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    row.refresh_from_db()
    assert (row.source, row.input) == (PriceSource.ADMIN, Decimal("2.25"))
    assert prices_sync().skipped_admin == ["openai/gpt-4o"]


def test_sync_button_and_reprice_action(staff_client, org):
    sync = staff_client.post(reverse("admin:pricing_modelprice_sync"), follow=True)
    assert "added" in sync.content.decode()
    assert ModelPrice.objects.count() > 2_000

    event = UsageRecord(
        request_id="req-1",
        organization_id=org.pk,
        api_key_id=None,
        created_at=datetime(2025, 9, 1, tzinfo=UTC),
        provider="openai",
        endpoint="/v1/chat/completions",
        status=Status.SUCCESS,
        model="gpt-4o-2024-08-06",
        usage=Usage(input_tokens=1_000_000),
        cost=Decimal("99"),  # priced wrongly at ingest
    )
    usage_record_batch([event])
    row = ModelPrice.objects.get(provider__slug="openai", model_id="gpt-4o")
    url = reverse("admin:pricing_modelprice_changelist")
    response = staff_client.post(
        url, {"action": "reprice_events", "_selected_action": [row.pk]}, follow=True
    )
    assert "Re-priced 1 events." in response.content.decode()
    assert UsageEvent.objects.get().cost == Decimal("2.5")


def test_sync_button_needs_post(staff_client):
    assert staff_client.get(reverse("admin:pricing_modelprice_sync")).status_code == 405


def test_provider_admin_guards_routes_and_builtins(staff_client, builtin_providers):
    add = reverse("admin:pricing_provider_add")
    form = {"slug": "v1", "name": "Bad", "api_style": "openai", "base_url": "", "is_active": "on"}
    assert "is a route of the proxy" in staff_client.post(add, form).content.decode()
    openai = Provider.objects.get(slug="openai")
    change = reverse("admin:pricing_provider_change", args=[openai.pk])
    builtin = {**form, "slug": "openai", "name": "OpenAI", "base_url": "https://evil.test"}
    assert (
        "take their upstream from settings" in staff_client.post(change, builtin).content.decode()
    )

    good = {**form, "slug": "acme-gw", "name": "Acme gateway", "base_url": "https://gw.acme.test"}
    assert staff_client.post(add, good).status_code == 302
    engine.ensure_fresh(force=True)
    assert Provider.objects.get(slug="acme-gw").base_url == "https://gw.acme.test"


def test_overrides_are_read_only_for_staff(staff_client):
    url = reverse("admin:pricing_priceoverride_changelist")
    assert staff_client.get(url).status_code == 200


def test_admin_form_says_why(staff_client):
    add = reverse("admin:pricing_provider_add")
    form = {
        "slug": "metadata",
        "name": "Sneaky",
        "api_style": "openai",
        "base_url": "http://169.254.169.254",
        "is_active": "on",
    }
    response = staff_client.post(add, form)
    assert response.status_code == 200  # the form again, with the error
    assert "internal address" in response.content.decode()
    assert not Provider.objects.filter(slug="metadata").exists()
