"""A second organization sees nothing of the first: on every endpoint and page (IDOR)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.analytics.conftest import call

SECRET_MARKERS = ("acme-secret-customer", "acme-secret-feature", "acme-only-model", "acme-trace")


@pytest.fixture
def acme(org, api_key, ingest):
    """The first organization's calls, tagged with values the second must never see."""
    t = timezone.now() - timedelta(minutes=5)
    return ingest(
        call(
            org,
            t,
            cost="12.3456789012",
            customer_id="acme-secret-customer",
            feature="acme-secret-feature",
            model="acme-only-model",
            trace_id="acme-trace",
            api_key_id=api_key.row.pk,
        )
    )[0]


@pytest.fixture
def globex_client(client, other_owner, other_org, ingest):
    # The second organization has a call of its own, so it sees its dashboard, not the setup.
    ingest(call(other_org, timezone.now() - timedelta(minutes=1), cost="0.0100000000"))
    client.force_login(other_owner)
    return client


@pytest.fixture
def globex_key(other_api_key):
    return {"HTTP_AUTHORIZATION": f"Bearer {other_api_key.raw}"}


LIST_ENDPOINTS = [
    "/api/costs/summary",
    "/api/costs/daily?group_by=customer",
    "/api/costs",
    "/api/costs?customer_id=acme-secret-customer",
    "/api/costs/export?format=csv",
    "/api/costs/export?format=json",
    "/api/customers",
    "/api/features",
    "/api/models",
]
DETAIL_ENDPOINTS = [
    "/api/costs/by-customer/acme-secret-customer",
    "/api/costs/by-feature/acme-secret-feature",
    "/api/costs/by-model/acme-only-model",
    "/api/traces/acme-trace",
]
PAGES = [
    "/dashboard/",
    "/requests/",
    "/models/",
    "/customers/",
    "/features/",
    "/traces/",
]
DETAIL_PAGES = [
    "/customers/acme-secret-customer/",
    "/features/acme-secret-feature/",
    "/models/acme-only-model/",
    "/traces/acme-trace/",
]


def _assert_nothing_of_acme(response):
    body = b"".join(response.streaming_content) if response.streaming else response.content
    text = body.decode()
    for marker in SECRET_MARKERS:
        assert marker not in text, (response.request["PATH_INFO"], marker)
    assert "12.34" not in text


@pytest.mark.parametrize("url", LIST_ENDPOINTS)
def test_api_lists_show_nothing_of_another_org(client, acme, globex_key, url):
    response = client.get(url, **globex_key)
    assert response.status_code == 200
    _assert_nothing_of_acme(response)


@pytest.mark.parametrize("url", DETAIL_ENDPOINTS)
def test_api_details_of_another_org_are_404(client, acme, globex_key, url):
    assert client.get(url, **globex_key).status_code == 404


def test_api_key_and_request_of_another_org_are_404(client, acme, api_key, globex_key):
    assert client.get(f"/api/costs/by-key/{api_key.row.pk}", **globex_key).status_code == 404


def test_session_api_is_scoped_too(globex_client, acme):
    for url in LIST_ENDPOINTS:
        response = globex_client.get(url)
        assert response.status_code == 200, url
        _assert_nothing_of_acme(response)
    for url in DETAIL_ENDPOINTS:
        assert globex_client.get(url).status_code == 404, url


@pytest.mark.parametrize("url", PAGES)
def test_pages_show_nothing_of_another_org(globex_client, acme, url):
    response = globex_client.get(url)
    assert response.status_code == 200
    _assert_nothing_of_acme(response)


@pytest.mark.parametrize("url", DETAIL_PAGES)
def test_detail_pages_of_another_org_are_404(globex_client, acme, url):
    assert globex_client.get(url).status_code == 404


def test_filtering_on_another_orgs_values_finds_nothing(globex_client, acme):
    for query in ("trace_id=acme-trace", "customer_id=acme-secret-customer"):
        body = globex_client.get(f"/requests/?{query}").content.decode()
        assert "No calls match." in body and acme.request_id not in body


def test_request_and_key_pages_of_another_org_are_404(globex_client, acme, api_key):
    assert globex_client.get(f"/requests/{acme.request_id}/").status_code == 404
    assert globex_client.get(f"/keys/{api_key.row.pk}/").status_code == 404


def test_the_owner_does_see_them(owner_client, acme):
    """The same URLs work for the organization that owns the data (the 404s mean something)."""
    for url in DETAIL_PAGES:
        assert owner_client.get(url).status_code == 200, url
    assert owner_client.get(f"/requests/{acme.request_id}/").status_code == 200
    assert "acme-secret-customer" in owner_client.get("/customers/").content.decode()
