"""Reads for accounts. Every tenant read takes the organization first."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.keys import KEY_PREFIX, hash_secret
from accounts.models import ApiKey, Invitation, Membership, Organization


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    """What a valid key proves: which key, which organization, which scopes."""

    key_id: int
    prefix: str
    organization_id: int
    organization_slug: str
    scopes: frozenset[str]

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


# --- API key authentication ---------------------------------------------------
# Three layers: this process's dict (no I/O), the shared cache (Redis in
# production), the database. A revoke deletes the shared entry and this
# process's entry; other processes drop theirs after KEY_CACHE_SECONDS.

_SHARED_TTL = 300
_MISSING = "-"  # shared-cache marker for "no such active key"
_local: dict[str, tuple[KeyIdentity | None, float]] = {}


def _local_ttl() -> float:
    from django.conf import settings

    return settings.AISPENDTRACK_KEY_CACHE_SECONDS


def _cache_key(key_hash: str) -> str:
    return f"apikey:{key_hash}"


def _identity_from_row(row: ApiKey) -> KeyIdentity:
    return KeyIdentity(
        key_id=row.pk,
        prefix=row.prefix,
        organization_id=row.organization_id,
        organization_slug=row.organization.slug,
        scopes=frozenset(row.scopes),
    )


def _to_shared(identity: KeyIdentity | None) -> object:
    if identity is None:
        return _MISSING
    return (
        identity.key_id,
        identity.prefix,
        identity.organization_id,
        identity.organization_slug,
        sorted(identity.scopes),
    )


def _from_shared(value: object) -> KeyIdentity | None:
    if value == _MISSING or not isinstance(value, list | tuple):
        return None
    key_id, prefix, org_id, org_slug, scopes = value
    return KeyIdentity(key_id, prefix, org_id, org_slug, frozenset(scopes))


def _local_get(key_hash: str) -> tuple[bool, KeyIdentity | None]:
    hit = _local.get(key_hash)
    if hit is not None and hit[1] > time.monotonic():
        return True, hit[0]
    return False, None


def _local_put(key_hash: str, identity: KeyIdentity | None) -> None:
    if len(_local) > 10_000:  # bounded: unknown keys must not grow it forever
        _local.clear()
    _local[key_hash] = (identity, time.monotonic() + _local_ttl())


def _looks_like_key(raw: str) -> bool:
    return raw.startswith(KEY_PREFIX) and 20 <= len(raw) <= 200


def api_key_authenticate(raw: str | None) -> KeyIdentity | None:
    """The identity of an active key, or None (missing, unknown or revoked)."""
    if not raw or not _looks_like_key(raw):
        return None
    key_hash = hash_secret(raw)
    found, identity = _local_get(key_hash)
    if found:
        return identity
    shared = cache.get(_cache_key(key_hash))
    if shared is None:
        row = (
            ApiKey.objects.select_related("organization")
            .filter(key_hash=key_hash, revoked_at__isnull=True)
            .first()
        )
        identity = _identity_from_row(row) if row else None
        cache.set(_cache_key(key_hash), _to_shared(identity), _SHARED_TTL)
    else:
        identity = _from_shared(shared)
    _local_put(key_hash, identity)
    return identity


async def aapi_key_authenticate(raw: str | None) -> KeyIdentity | None:
    """`api_key_authenticate` for the proxy's event loop; no I/O on a warm key."""
    if not raw or not _looks_like_key(raw):
        return None
    key_hash = hash_secret(raw)
    found, identity = _local_get(key_hash)
    if found:
        return identity
    shared = await cache.aget(_cache_key(key_hash))
    if shared is None:
        row = await (
            ApiKey.objects.select_related("organization")
            .filter(key_hash=key_hash, revoked_at__isnull=True)
            .afirst()
        )
        identity = _identity_from_row(row) if row else None
        await cache.aset(_cache_key(key_hash), _to_shared(identity), _SHARED_TTL)
    else:
        identity = _from_shared(shared)
    _local_put(key_hash, identity)
    return identity


def api_key_cache_invalidate(key_hash: str) -> None:
    _local.pop(key_hash, None)
    cache.delete(_cache_key(key_hash))


# --- Tenant reads -------------------------------------------------------------


def api_key_list(*, organization: Organization) -> QuerySet[ApiKey]:
    """Keys of one organization, newest first, revoked ones included."""
    return ApiKey.objects.filter(organization=organization).select_related("created_by")


def api_key_get_for_org(*, organization: Organization, key_id: int) -> ApiKey:
    """The key, or 404 — the same answer for "missing" and "not yours"."""
    key = ApiKey.objects.filter(organization=organization, pk=key_id).first()
    if key is None:
        raise Http404("No such API key.")
    return key


def membership_list(*, organization: Organization) -> QuerySet[Membership]:
    return Membership.objects.filter(organization=organization).select_related("user")


def membership_get_for_org(*, organization: Organization, membership_id: int) -> Membership:
    membership = (
        Membership.objects.filter(organization=organization, pk=membership_id)
        .select_related("user")
        .first()
    )
    if membership is None:
        raise Http404("No such member.")
    return membership


def membership_for_user(*, organization: Organization, user) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(organization=organization, user=user).first()


def organizations_for_user(*, user) -> QuerySet[Organization]:
    return Organization.objects.filter(memberships__user=user).order_by("name")


def invitation_pending_list(*, organization: Organization) -> QuerySet[Invitation]:
    return Invitation.objects.filter(
        organization=organization,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=timezone.now(),
    )


def invitation_get_for_org(*, organization: Organization, invitation_id: int) -> Invitation:
    invitation = Invitation.objects.filter(organization=organization, pk=invitation_id).first()
    if invitation is None:
        raise Http404("No such invitation.")
    return invitation


def invitation_get_by_token(*, token: str) -> Invitation | None:
    """A usable invitation for this raw token, or None (unknown, used, expired, revoked)."""
    return (
        Invitation.objects.select_related("organization")
        .filter(
            token_hash=hash_secret(token),
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .first()
    )
