"""The public price list and Settings → Pricing (tenant isolation included)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from analytics.models import HourlyRollup, Status
from pricing.models import PriceOverride
from pricing.services import price_override_create, prices_sync

pytestmark = pytest.mark.django_db
FORM = {"model": "gpt-4o", "provider": "openai", "input": "2", "output": "8", "cache_read": ""}


def override_for(org, user, model="gpt-4o"):
    return price_override_create(
        organization=org,
        created_by=user,
        provider="",
        model=model,
        prices={"input": Decimal("2"), "output": Decimal("8")},
    )


def test_public_price_list_is_searchable_and_paginated(client):
    prices_sync()
    url = reverse("pricing_models")
    assert url == "/pricing/models"

    page = client.get(url, {"q": "gpt-4o-mini", "provider": "openai"})
    assert page.status_code == 200
    body = page.content.decode()
    assert "<code>gpt-4o-mini</code>" in body and "<code>claude" not in body
    assert "$0.15" in body and "$0.075" in body  # input, cached input

    tiers = client.get(url, {"q": "claude-sonnet-4-5", "provider": "anthropic"}).content.decode()
    assert "above 200k input tokens: $6.00 in / $22.50 out" in tiers

    everything = client.get(url, {"page": 2})
    assert everything.status_code == 200 and "Page 2 of" in everything.content.decode()


def test_public_list_shows_the_price_in_effect_today(client):
    prices_sync()
    body = client.get(reverse("pricing_models"), {"q": "o3", "provider": "openai"}).content
    row = body.decode().split("<code>o3</code>")[1].split("</tr>")[0]
    assert "$2.00" in row and "$10.00" not in row  # the 2025-06-10 cut, not the launch price


def test_settings_needs_login(client):
    response = client.get(reverse("pricing_settings"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_owner_adds_edits_and_deletes_a_price(owner_client, org):
    response = owner_client.post(reverse("pricing_settings"), FORM)
    assert response.status_code == 302
    override = PriceOverride.objects.get(organization=org)
    assert (override.provider, override.input, override.output) == (
        "openai",
        Decimal("2"),
        Decimal("8"),
    )

    edit = reverse("price_override_edit", args=[override.pk])
    assert owner_client.get(edit).status_code == 200
    owner_client.post(edit, {**FORM, "input": "1.75", "effective_from": "2025-07-01 00:00"})
    override.refresh_from_db()
    assert override.input == Decimal("1.75")
    assert override.effective_from == datetime(2025, 7, 1, tzinfo=UTC)

    delete = reverse("price_override_delete", args=[override.pk])
    assert owner_client.get(delete).status_code == 200
    assert owner_client.post(delete).status_code == 302
    assert not PriceOverride.objects.exists()


def test_bad_input_is_explained(owner_client, org, owner):
    response = owner_client.post(reverse("pricing_settings"), {**FORM, "input": "", "output": ""})
    assert response.status_code == 400
    assert "Set at least an input or an output price." in response.content.decode()
    override_for(org, owner)
    again = owner_client.post(reverse("pricing_settings"), {**FORM, "provider": ""})
    assert again.status_code == 400 and "edit that one instead" in again.content.decode()


def test_members_read_but_cannot_write(member_client, org, owner):
    override = override_for(org, owner)
    page = member_client.get(reverse("pricing_settings"))
    assert page.status_code == 200
    assert "gpt-4o" in page.content.decode() and "Save price" not in page.content.decode()

    member_client.post(reverse("pricing_settings"), {**FORM, "model": "other"})
    assert PriceOverride.objects.count() == 1
    assert member_client.get(reverse("price_override_edit", args=[override.pk])).status_code == 403
    assert (
        member_client.post(reverse("price_override_delete", args=[override.pk])).status_code == 403
    )


def test_another_organization_never_sees_or_touches_our_prices(
    client, org, owner, other_org, other_owner
):
    ours = override_for(org, owner, model="our-secret-model")
    client.force_login(other_owner)

    page = client.get(reverse("pricing_settings"))
    assert "our-secret-model" not in page.content.decode()
    edit = reverse("price_override_edit", args=[ours.pk])
    delete = reverse("price_override_delete", args=[ours.pk])
    assert client.get(edit).status_code == 404
    assert client.post(edit, FORM).status_code == 404
    assert client.get(delete).status_code == 404
    assert client.post(delete).status_code == 404
    assert PriceOverride.objects.get(pk=ours.pk).input == Decimal("2")


def test_unpriced_calls_are_counted_and_named(owner_client, org):
    now = datetime.now(tz=UTC).replace(minute=0, second=0, microsecond=0)
    for model, calls in (("mystery-1", 40), ("mystery-2", 2)):
        HourlyRollup.objects.create(
            organization=org,
            hour=now,
            provider="openai",
            model=model,
            customer_id="",
            feature="",
            environment="",
            status=Status.SUCCESS,
            calls=calls,
            unpriced_calls=calls,
        )
    body = owner_client.get(reverse("pricing_settings")).content.decode()
    assert "42 calls on 2 models in the last 30 days have no price" in body
    assert "?model=mystery-1&amp;provider=openai#add-price" in body
    prefilled = owner_client.get(reverse("pricing_settings"), {"model": "mystery-1"})
    assert 'value="mystery-1"' in prefilled.content.decode()


def test_reprice_button_is_for_managers(client, owner, member):
    client.force_login(member)
    assert client.post(reverse("pricing_reprice")).status_code == 403
    client.force_login(owner)
    response = client.post(reverse("pricing_reprice"), {"model": "gpt-4o", "all": "1"})
    assert response.status_code == 302
