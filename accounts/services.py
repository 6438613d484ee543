"""Writes for accounts: organizations, memberships, invitations and API keys."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from accounts.keys import display_prefix, generate_raw_key, generate_token, hash_secret
from accounts.models import (
    MANAGER_ROLES,
    ApiKey,
    Invitation,
    Membership,
    Organization,
    Role,
    Scope,
)
from accounts.selectors import api_key_cache_invalidate
from billing.services import subscription_ensure

ALL_SCOPES = frozenset(Scope.values)
# last_used_at is informational; writing it on every call would put a DB
# write on the hot path, so it moves at most once a minute.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class AccountError(Exception):
    """A request that breaks an accounts rule; the message is for the user."""


def _unique_slug(name: str) -> str:
    base = slugify(name)[:120] or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def organization_create(*, name: str, owner) -> Organization:
    """A new organization with `owner` as its owner member."""
    name = name.strip()
    if not name:
        raise AccountError("An organization needs a name.")
    # Names are unique per owner, so the switcher and commands never offer two
    # identical names to one person.
    if Organization.objects.filter(
        name__iexact=name, memberships__user=owner, memberships__role=Role.OWNER
    ).exists():
        raise AccountError(f"You already own an organization named {name!r}; pick another name.")
    organization = Organization.objects.create(name=name, slug=_unique_slug(name))
    Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
    subscription_ensure(organization=organization)  # Free with billing on
    return organization


def organization_update(
    *, organization: Organization, name: str, timezone_name: str
) -> Organization:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = name.strip()
    if not name:
        raise AccountError("An organization needs a name.")
    try:
        ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise AccountError(f"Unknown time zone {timezone_name!r}.") from error
    organization.name = name
    organization.timezone = timezone_name
    organization.save(update_fields=["name", "timezone"])
    return organization


@transaction.atomic
def organizations_delete(*, ids: Iterable[int]) -> None:
    """Delete these organizations and, by the ORM's cascade, every row of
    theirs (a staff action or the GDPR purge, never a tenant's own request).

    Each is locked FOR UPDATE first. The ledger's events have no database
    constraint on their organization or key; the ledger writer holds its
    batch's organizations FOR KEY SHARE for its transaction instead
    (analytics.services.owners_hold). So a batch in flight finishes before
    the cascade reads the events, which then deletes them too, and a batch
    after it finds the organization gone: no event outlives its organization.
    """
    doomed = list(Organization.objects.select_for_update().filter(pk__in=list(ids)).order_by("pk"))
    for organization in doomed:
        organization.delete()


def api_key_issue(
    *,
    organization: Organization,
    name: str,
    scopes: Iterable[str] = (Scope.PROXY, Scope.READ),
    created_by=None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the raw key, which is never stored."""
    scopes = sorted(set(scopes))
    if not scopes:
        raise AccountError("Choose at least one scope: proxy, read or both.")
    unknown = set(scopes) - ALL_SCOPES
    if unknown:
        raise AccountError(f"Unknown scope(s): {', '.join(sorted(unknown))}.")
    name = name.strip() or "Unnamed key"
    raw = generate_raw_key()
    key = ApiKey.objects.create(
        organization=organization,
        name=name[:100],
        prefix=display_prefix(raw),
        key_hash=hash_secret(raw),
        scopes=scopes,
        created_by=created_by,
    )
    return key, raw


def api_key_revoke(*, organization: Organization, key: ApiKey) -> ApiKey:
    """Revoke a key of this organization; it stops working at once in this process
    and in the shared cache (other workers within KEY_CACHE_SECONDS)."""
    if key.organization_id != organization.pk:
        raise AccountError("That key belongs to another organization.")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    api_key_cache_invalidate(key.key_hash)
    return key


def api_key_touch_many(*, key_ids: Iterable[int], at: datetime) -> int:
    """Move last_used_at forward for these keys, at most once a minute each.

    Called once per ledger batch (and by the REST API), never per proxied call.
    """
    ids = set(key_ids)
    if not ids:
        return 0
    stale_before = at - LAST_USED_RESOLUTION
    return ApiKey.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale_before), pk__in=ids
    ).update(last_used_at=at)


def invitation_create(
    *, organization: Organization, email: str, role: str, invited_by
) -> tuple[Invitation, str]:
    """An invitation and its raw token (for the link; only the hash is stored).

    The inviter's authority is read from the database, not from the caller:
    they must manage this organization and may not offer a role above their own.
    """
    email = get_user_model().objects.normalize_email(email.strip()).lower()
    if role not in Role.values:
        raise AccountError(f"Unknown role {role!r}.")
    inviter = Membership.objects.filter(organization=organization, user=invited_by).first()
    _check_may_grant(inviter, role)
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise AccountError(f"{email} is already a member of {organization.name}.")
    token = generate_token()
    invitation = Invitation.objects.create(
        organization=organization,
        email=email,
        role=role,
        token_hash=hash_secret(token),
        invited_by=invited_by,
        expires_at=timezone.now() + timedelta(days=settings.AISPENDTRACK_INVITE_DAYS),
    )
    return invitation, token


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user) -> Membership:
    """Join the invitation's organization; the invitation cannot be used again.

    The role is granted only if the inviter could still grant it now: an
    invitation from someone since demoted or removed must be sent again.
    """
    locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if locked.accepted_at or locked.revoked_at or locked.expires_at <= timezone.now():
        raise AccountError("This invitation has already been used or has expired.")
    if user.email.lower() != locked.email.lower():
        raise AccountError(
            f"This invitation is for {locked.email}; log in with that address to accept it."
        )
    inviter = Membership.objects.filter(
        organization=locked.organization_id, user=locked.invited_by_id
    ).first()
    try:
        _check_may_grant(inviter, locked.role)
    except AccountError:
        raise AccountError(
            "Whoever sent this invitation can no longer grant its role; "
            "ask an owner or admin of the organization for a new one."
        ) from None
    membership, _ = Membership.objects.get_or_create(
        user=user, organization=locked.organization, defaults={"role": locked.role}
    )
    locked.accepted_at = timezone.now()
    locked.save(update_fields=["accepted_at"])
    return membership


def invitation_revoke(*, organization: Organization, invitation: Invitation) -> None:
    if invitation.organization_id != organization.pk:
        raise AccountError("That invitation belongs to another organization.")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])


def invitation_purge_expired_all_orgs(*, older_than: timedelta = timedelta(days=30)) -> int:
    """Delete invitations that expired (or were used or withdrawn) long ago, in
    every organization: a beat task's housekeeping, not a tenant read."""
    cutoff = timezone.now() - older_than
    deleted, _ = Invitation.objects.filter(
        Q(expires_at__lt=cutoff) | Q(accepted_at__lt=cutoff) | Q(revoked_at__lt=cutoff)
    ).delete()
    return deleted


# Who outranks whom. A role is granted only by someone whose rank is at least
# as high, and only managers (owners, admins) grant at all.
ROLE_RANK: dict[str, int] = {Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


def roles_grantable(by: Membership | None) -> list[tuple[str, str]]:
    """The roles `by` may give (invite as, or change someone to): none for a
    member, up to their own for owners and admins. Forms offer only these."""
    if by is None or by.role not in MANAGER_ROLES:
        return []
    rank = ROLE_RANK[by.role]
    return [(value, label) for value, label in Role.choices if ROLE_RANK[value] <= rank]


def _check_may_grant(by: Membership | None, role: str) -> None:
    if by is None or by.role not in MANAGER_ROLES:
        raise AccountError("Only owners and admins can invite people or change roles.")
    if role == Role.OWNER and by.role != Role.OWNER:
        raise AccountError("Only an owner can make someone an owner.")
    if ROLE_RANK[role] > ROLE_RANK[by.role]:
        raise AccountError(f"You cannot grant {role}, a role above your own ({by.role}).")


def _lock_members(organization: Organization, *memberships: Membership) -> list[Membership | None]:
    """Fresh, locked copies of these memberships (None for one deleted meanwhile),
    after locking every owner row of the organization: two owners demoting or
    removing each other at once must not leave it with none."""
    list(
        Membership.objects.select_for_update()
        .filter(organization=organization, role=Role.OWNER)
        .order_by("pk")
    )
    fresh = Membership.objects.select_for_update().in_bulk([m.pk for m in memberships])
    return [fresh.get(m.pk) for m in memberships]


def _owner_count(organization: Organization) -> int:
    return Membership.objects.filter(organization=organization, role=Role.OWNER).count()


@transaction.atomic
def membership_role_change(
    *, organization: Organization, membership: Membership, role: str, by: Membership
) -> Membership:
    """Give `membership` a new role. `by` (re-read under lock) must outrank or
    equal both the member's current role and the new one; owners only by owners;
    the organization keeps at least one owner."""
    if role not in Role.values:
        raise AccountError(f"Unknown role {role!r}.")
    if membership.organization_id != organization.pk or by.organization_id != organization.pk:
        raise AccountError("That member belongs to another organization.")
    target, actor = _lock_members(organization, membership, by)
    if target is None:
        raise AccountError("That person is no longer a member.")
    _check_may_grant(actor, role)
    assert actor is not None  # noqa: S101 (checked by _check_may_grant)
    if Role.OWNER in (role, target.role) and actor.role != Role.OWNER:
        raise AccountError("Only an owner can make or unmake owners.")
    if ROLE_RANK[target.role] > ROLE_RANK[actor.role]:
        raise AccountError(f"You cannot change the role of {target.role}s as {actor.role}.")
    if target.role == Role.OWNER and role != Role.OWNER and _owner_count(organization) == 1:
        raise AccountError("An organization needs at least one owner; promote someone first.")
    target.role = role
    target.save(update_fields=["role"])
    membership.role = role
    return target


@transaction.atomic
def membership_remove(*, organization: Organization, membership: Membership, by: Membership):
    """Remove a member. Admins remove admins and members; owners anyone; the
    last owner stays."""
    if membership.organization_id != organization.pk or by.organization_id != organization.pk:
        raise AccountError("That member belongs to another organization.")
    target, actor = _lock_members(organization, membership, by)
    if target is None:
        return
    if actor is None or actor.role not in MANAGER_ROLES:
        raise AccountError("Only owners and admins can remove members.")
    if target.role == Role.OWNER and actor.role != Role.OWNER:
        raise AccountError("Only an owner can remove an owner.")
    if target.role == Role.OWNER and _owner_count(organization) == 1:
        raise AccountError("An organization needs at least one owner; promote someone first.")
    target.delete()


@transaction.atomic
def organization_bootstrap(
    *,
    org_name: str,
    email: str,
    password: str | None = None,
    scopes: Sequence[str] = (Scope.PROXY, Scope.READ),
) -> tuple[Organization, ApiKey, str]:
    """User (created if absent), organization, owner membership and a key
    with `scopes` (proxy+read by default)."""
    User = get_user_model()
    email = User.objects.normalize_email(email.strip()).lower()
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User.objects.create_user(username=email[:150], email=email, password=password)
        if password is None:
            user.set_unusable_password()
            user.save(update_fields=["password"])
    elif password:
        user.set_password(password)
        user.save(update_fields=["password"])
    _mark_email_verified(user)
    organization = organization_create(name=org_name, owner=user)
    key, raw = api_key_issue(
        organization=organization,
        name="bootstrap",
        scopes=list(scopes),
        created_by=user,
    )
    return organization, key, raw


def _mark_email_verified(user) -> None:
    from allauth.account.models import EmailAddress

    EmailAddress.objects.update_or_create(
        user=user, email=user.email, defaults={"verified": True, "primary": True}
    )
