"""Reads for accounts. Every tenant read takes the organization first."""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, OperationalError, connection
from django.db.models import Count, Max, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.keys import KEY_PREFIX, hash_secret
from accounts.models import ApiKey, Invitation, Membership, Organization
from config.dbguard import db_deadline


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
# production), the database. A revoke leaves a "revoked" mark in the shared
# cache and drops this process's entry; other processes drop theirs within
# KEY_CACHE_SECONDS (Redis) or at the next revocation check (each second,
# `api_key_revocations_sync`, which also covers deployments without Redis,
# where the "shared" cache is each process's own memory).

_SHARED_TTL = 300
_MISSING = "-"  # shared-cache marker for "no such active key"
_local: dict[str, tuple[KeyIdentity | None, float]] = {}
# Bumped by every invalidation in this process: a lookup that started before
# a revoke must not put the key it read back into the local cache.
_generation = 0


def _local_ttl() -> float:
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


def _local_put(key_hash: str, identity: KeyIdentity | None, generation: int) -> None:
    if generation != _generation:
        return  # a revoke happened while this lookup was in flight: it wins
    if len(_local) > 10_000:  # bounded: unknown keys must not grow it forever
        _local.clear()
    _local[key_hash] = (identity, time.monotonic() + _local_ttl())


def _looks_like_key(raw: str) -> bool:
    return raw.startswith(KEY_PREFIX) and 20 <= len(raw) <= 200


# Cold lookups run on their own threads, never on asgiref's one shared
# "thread-sensitive" thread: a database that hangs must not queue the shared
# cache reads of warm keys behind it. After a failure the database is not
# asked again for DB_RETRY_SECONDS (cold keys answer 503 at once meanwhile).
_cache_threads = ThreadPoolExecutor(2, thread_name_prefix="aispendtrack-keycache")
_db_threads = ThreadPoolExecutor(4, thread_name_prefix="aispendtrack-keydb")
DB_RETRY_SECONDS = 1.0
_db_down_until = 0.0


def _identity_from_db(key_hash: str) -> KeyIdentity | None:
    """The database's answer, bounded: a database that does not answer within
    AISPENDTRACK_KEY_LOOKUP_TIMEOUT raises OperationalError."""
    global _db_down_until
    if time.monotonic() < _db_down_until:
        raise OperationalError("the database was unreachable a moment ago")
    try:
        with db_deadline(settings.AISPENDTRACK_KEY_LOOKUP_TIMEOUT):
            row = (
                ApiKey.objects.select_related("organization")
                .filter(key_hash=key_hash, revoked_at__isnull=True)
                .first()
            )
    except DatabaseError:
        _db_down_until = time.monotonic() + DB_RETRY_SECONDS
        raise
    return _identity_from_row(row) if row else None


def _identity_from_db_thread(key_hash: str) -> KeyIdentity | None:
    """`_identity_from_db` on a lookup thread. Cold lookups are rare (once per
    key and process per _SHARED_TTL): a fresh connection each time never meets
    a stale or severed one, and none is left open."""
    try:
        return _identity_from_db(key_hash)
    finally:
        with contextlib.suppress(Exception):
            connection.close()


def _authenticate_hash(key_hash: str) -> KeyIdentity | None:
    """Shared cache, then database; fills both caches."""
    generation = _generation
    shared = cache.get(_cache_key(key_hash))
    if shared is None:
        identity = _identity_from_db(key_hash)
        # add, not set: a revoke's mark written meanwhile must stay.
        cache.add(_cache_key(key_hash), _to_shared(identity), _SHARED_TTL)
    else:
        identity = _from_shared(shared)
    _local_put(key_hash, identity, generation)
    return identity


def api_key_authenticate(raw: str | None) -> KeyIdentity | None:
    """The identity of an active key, or None (missing, unknown or revoked)."""
    if not raw or not _looks_like_key(raw):
        return None
    key_hash = hash_secret(raw)
    found, identity = _local_get(key_hash)
    if found:
        return identity
    return _authenticate_hash(key_hash)


def api_key_known(raw: str | None) -> tuple[bool, KeyIdentity | None]:
    """(True, identity) when this process can answer without I/O: a warm key,
    or one that cannot be a key; (False, None) when the caches must be asked."""
    if not raw or not _looks_like_key(raw):
        return True, None
    return _local_get(hash_secret(raw))


# Cold lookups in flight, by key hash: when a warm key's local entry expires
# under load, every call in flight with it would otherwise ask the shared
# cache at once (32 reads queued on two threads at c=32, every
# KEY_CACHE_SECONDS: a latency spike each time). They share one lookup.
_inflight: dict[str, asyncio.Future[KeyIdentity | None]] = {}


async def aapi_key_authenticate(raw: str | None) -> KeyIdentity | None:
    """`api_key_authenticate` for the proxy's event loop; no I/O on a warm key.
    Concurrent cold lookups of one key share a single read."""
    if not raw or not _looks_like_key(raw):
        return None
    key_hash = hash_secret(raw)
    found, identity = _local_get(key_hash)
    if found:
        return identity
    loop = asyncio.get_running_loop()
    lookup = _inflight.get(key_hash)
    if lookup is None or lookup.get_loop() is not loop:
        lookup = _inflight[key_hash] = loop.create_task(_authenticate_cold(key_hash))
        lookup.add_done_callback(lambda done: _inflight_forget(key_hash, done))
    # A caller that gives up (its client left, its deadline passed) leaves
    # the lookup running for the others.
    return await asyncio.shield(lookup)


def _inflight_forget(key_hash: str, done: asyncio.Future) -> None:
    if _inflight.get(key_hash) is done:
        del _inflight[key_hash]
    if not done.cancelled():
        done.exception()  # retrieved: a failure every waiter saw is not "never retrieved"


def _shared_get(key_hash: str) -> object:
    # Resolved on the lookup thread: `cache` is context-local, and each call's
    # task has its own context, so resolving it on the event loop built a new
    # client (and Redis connection) per cold lookup.
    return cache.get(_cache_key(key_hash))


def _shared_add(key_hash: str, value: object) -> None:
    cache.add(_cache_key(key_hash), value, _SHARED_TTL)


async def _authenticate_cold(key_hash: str) -> KeyIdentity | None:
    loop = asyncio.get_running_loop()
    generation = _generation
    shared = await loop.run_in_executor(_cache_threads, _shared_get, key_hash)
    if shared is not None:
        identity = _from_shared(shared)
    else:
        identity = await loop.run_in_executor(_db_threads, _identity_from_db_thread, key_hash)
        loop.run_in_executor(_cache_threads, _shared_add, key_hash, _to_shared(identity))
    _local_put(key_hash, identity, generation)
    return identity


def api_key_cache_invalidate(key_hash: str) -> None:
    """Forget a revoked key everywhere this process can reach: its local entry,
    and in the shared cache a "revoked" mark (not a delete, so that a lookup
    in flight cannot put the key back for _SHARED_TTL)."""
    global _generation
    _generation += 1
    _local.pop(key_hash, None)
    cache.set(_cache_key(key_hash), _MISSING, _SHARED_TTL)


# The revocation check: (how many keys are revoked, the latest revoked_at).
_revocations_seen: tuple[int, datetime | None] | None = None
# Revocations written with a clock this far behind ours are still found.
_CLOCK_SLACK = timedelta(minutes=5)
# When this process began caching keys. Its first check forgets every key
# revoked since then: a worker that cached a key and then met its revoke in
# its first check (a late-started worker, a first round that failed) must not
# take the revoked state as its baseline and serve the key for _SHARED_TTL.
_PROCESS_STARTED = timezone.now()


def api_key_revocations_sync() -> int:
    """Forget, in this process, every key revoked since the last check; returns
    how many were forgotten. Run each second off the hot path (ProxyRuntime),
    so a revoke reaches every worker within ~1 s even with no Redis."""
    global _revocations_seen
    with db_deadline(settings.AISPENDTRACK_KEY_LOOKUP_TIMEOUT):
        state = ApiKey.objects.filter(revoked_at__isnull=False).aggregate(
            count=Count("pk"), latest=Max("revoked_at")
        )
        version = (state["count"], state["latest"])
        previous, _revocations_seen = _revocations_seen, version
        if previous == version or version[1] is None:
            return 0
        if previous is None:
            since = _PROCESS_STARTED - _CLOCK_SLACK
        else:
            since = (previous[1] or version[1]) - _CLOCK_SLACK
        hashes = list(
            ApiKey.objects.filter(revoked_at__gte=since).values_list("key_hash", flat=True)
        )
    for key_hash in hashes:
        api_key_cache_invalidate(key_hash)
    return len(hashes)


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


def membership_current(
    *, user, chosen_organization_id: int | str | None = None
) -> Membership | None:
    """The membership a logged-in user's pages act in: the organization chosen
    in the session (`accounts.middleware.SESSION_KEY`) if the user still
    belongs to it, else their first; None without any membership."""
    memberships = Membership.objects.filter(user=user).select_related("organization")
    membership = None
    if chosen_organization_id:
        membership = memberships.filter(organization_id=chosen_organization_id).first()
    if membership is None:
        membership = memberships.order_by("created_at").first()
    return membership


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
