"""API keys: only a hash is stored, lookups are cached, revokes bite at once."""

from __future__ import annotations

import asyncio
import io

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts import selectors
from accounts.keys import hash_secret
from accounts.models import ApiKey, Scope
from accounts.selectors import aapi_key_authenticate, api_key_authenticate
from accounts.services import AccountError, api_key_issue, api_key_revoke


def database_dump() -> str:
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_issued_key_has_the_documented_shape(org):
    key, raw = api_key_issue(organization=org, name="k", scopes=[Scope.PROXY])
    assert raw.startswith("ask_")
    assert len(raw) - len("ask_") >= 32
    assert key.prefix == raw[:12]
    assert key.key_hash == hash_secret(raw)
    assert key.scopes == ["proxy"]


@pytest.mark.django_db
def test_raw_key_is_stored_nowhere(owner_client, org):
    response = owner_client.post(
        reverse("api_keys"), {"name": "prod", "scopes": [Scope.PROXY, Scope.READ]}
    )
    raw = response.context["raw_key"]
    assert raw.encode() in response.content  # shown once, in this response

    assert raw not in database_dump()
    assert raw[len("ask_") :] not in database_dump()
    # And it is not shown again.
    assert raw.encode() not in owner_client.get(reverse("api_keys")).content


@pytest.mark.django_db
def test_authenticate_by_hash(api_key, org):
    identity = api_key_authenticate(api_key.raw)
    assert identity.organization_id == org.pk
    assert identity.key_id == api_key.row.pk
    assert identity.scopes == {"proxy", "read"}
    assert api_key_authenticate(api_key.raw + "x") is None
    assert api_key_authenticate("sk-not-ours") is None
    assert api_key_authenticate(None) is None


@pytest.mark.django_db(transaction=True)  # cold lookups run on their own threads
def test_async_authenticate_matches_sync(api_key, org):
    authenticate = async_to_sync(aapi_key_authenticate)
    identity = authenticate(api_key.raw)
    assert identity == api_key_authenticate(api_key.raw)
    assert identity.organization_id == org.pk
    assert authenticate("ask_" + "x" * 40) is None


class CountingCache:
    """The real cache, counting reads."""

    def __init__(self, inner) -> None:
        self.inner, self.reads = inner, 0

    def get(self, *args, **kwargs):
        self.reads += 1
        return self.inner.get(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.django_db(transaction=True)  # cold lookups run on their own threads
def test_concurrent_cold_lookups_of_one_key_share_one_read(api_key, org, monkeypatch):
    from django.core.cache import cache

    counting = CountingCache(cache)
    monkeypatch.setattr(selectors, "cache", counting)
    cache.delete(f"apikey:{hash_secret(api_key.raw)}")
    selectors._local.clear()

    async def many():
        return await asyncio.gather(*(aapi_key_authenticate(api_key.raw) for _ in range(20)))

    identities = async_to_sync(many)()
    assert {identity.key_id for identity in identities} == {api_key.row.pk}
    assert counting.reads == 1
    assert not selectors._inflight


@pytest.mark.django_db
def test_revoke_takes_effect_immediately_even_when_cached(api_key, org, django_assert_num_queries):
    assert api_key_authenticate(api_key.raw) is not None
    with django_assert_num_queries(0):  # warm: no query at all
        assert api_key_authenticate(api_key.raw) is not None

    api_key_revoke(organization=org, key=api_key.row)

    assert api_key_authenticate(api_key.raw) is None


def _revoked_elsewhere(key) -> None:
    """A revoke by another process with no shared cache between them (no
    Redis): only the database knows; this process's caches still hold the key."""
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())


@pytest.mark.django_db
def test_the_revocation_check_forgets_a_key_revoked_in_another_process(api_key, monkeypatch):
    monkeypatch.setattr(selectors, "_revocations_seen", None)
    assert selectors.api_key_revocations_sync() == 0  # nothing revoked yet: the baseline
    assert api_key_authenticate(api_key.raw) is not None  # cached here

    _revoked_elsewhere(api_key.row)
    assert api_key_authenticate(api_key.raw) is not None  # still cached: nobody told us

    assert selectors.api_key_revocations_sync() == 1
    assert api_key_authenticate(api_key.raw) is None
    assert async_to_sync(aapi_key_authenticate)(api_key.raw) is None


@pytest.mark.django_db
def test_a_first_check_after_the_revoke_still_forgets_the_key(api_key, monkeypatch):
    # A worker that started late: it cached the key, the key was revoked
    # elsewhere, and only then did this process run its first check. The
    # revoked state must not become its baseline (the key served for minutes).
    monkeypatch.setattr(selectors, "_revocations_seen", None)
    assert api_key_authenticate(api_key.raw) is not None
    _revoked_elsewhere(api_key.row)

    assert selectors.api_key_revocations_sync() == 1
    assert api_key_authenticate(api_key.raw) is None
    assert selectors.api_key_revocations_sync() == 0  # and not again


@pytest.mark.django_db
def test_revoke_through_the_page(owner_client, api_key):
    page = owner_client.get(reverse("api_key_revoke", args=[api_key.row.pk]))
    assert page.status_code == 200 and b"cannot be undone" in page.content

    owner_client.post(reverse("api_key_revoke", args=[api_key.row.pk]))

    api_key.row.refresh_from_db()
    assert api_key.row.revoked_at is not None
    assert api_key_authenticate(api_key.raw) is None


@pytest.mark.django_db
def test_keys_page_lists_prefix_name_scopes(owner_client, api_key):
    content = owner_client.get(reverse("api_keys")).content.decode()
    assert api_key.row.prefix in content
    assert "test key" in content
    assert api_key.row.key_hash not in content


@pytest.mark.django_db
def test_second_org_cannot_see_or_revoke_the_first_orgs_keys(client, api_key, other_owner):
    client.force_login(other_owner)

    assert api_key.row.prefix not in client.get(reverse("api_keys")).content.decode()
    assert client.get(reverse("api_key_revoke", args=[api_key.row.pk])).status_code == 404
    assert client.post(reverse("api_key_revoke", args=[api_key.row.pk])).status_code == 404
    api_key.row.refresh_from_db()
    assert api_key.row.revoked_at is None


@pytest.mark.django_db
def test_service_refuses_cross_org_revoke(api_key, other_org):
    with pytest.raises(AccountError):
        api_key_revoke(organization=other_org, key=api_key.row)


@pytest.mark.django_db
def test_member_cannot_create_or_revoke_keys(member_client, api_key):
    member_client.post(reverse("api_keys"), {"name": "sneaky", "scopes": [Scope.PROXY]})
    assert not ApiKey.objects.filter(name="sneaky").exists()

    assert member_client.get(reverse("api_key_revoke", args=[api_key.row.pk])).status_code == 403
    assert member_client.post(reverse("api_key_revoke", args=[api_key.row.pk])).status_code == 403
    api_key.row.refresh_from_db()
    assert api_key.row.revoked_at is None


@pytest.mark.django_db
def test_create_form_requires_a_scope(owner_client):
    response = owner_client.post(reverse("api_keys"), {"name": "noscope"})
    assert response.status_code == 400
    assert "Choose at least one scope." in response.content.decode()
    assert not ApiKey.objects.filter(name="noscope").exists()
