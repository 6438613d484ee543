"""Who a session cookie belongs to, without Django's request machinery.

For lean endpoints that answer outside the middleware stack (the live pages'
poll, proxy/live.py). `session_member` accepts a session exactly when
Django's `SessionMiddleware` + `AuthenticationMiddleware` +
`accounts.middleware.OrganizationMiddleware` would give the request a
logged-in user with an organization *and touch nothing*: the same session
store (missing or expired sessions load empty), the same backend rules
(`backend.get_user`: the user exists and is active), the same session hash
check (a password change, or `update_session_auth_hash` elsewhere, logs the
session out), the same membership rule (`membership_current`). Every other
case answers None and the caller hands the request to Django unchanged, so
whatever Django does there (flush a session whose hash does not verify,
cycle the key of one signed with a fallback secret, redirect to the login
page or to "create an organization") still happens exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ValidationError
from django.utils.crypto import constant_time_compare

from accounts.middleware import SESSION_KEY as ORGANIZATION_SESSION_KEY
from accounts.models import Membership
from accounts.selectors import membership_current


@dataclass(frozen=True, slots=True)
class SessionMember:
    session: SessionBase  # loaded; not to be modified (nothing saves it)
    membership: Membership  # .user and .organization are the request's


def session_member(session_key: str | None) -> SessionMember | None:
    """The logged-in member behind `session_key`, or None where Django's own
    middleware would not simply find one (module docstring). Reads: the
    session, the user, the membership (one or two queries)."""
    if not session_key:
        return None
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    try:
        user_id = get_user_model()._meta.pk.to_python(store[SESSION_KEY])
        backend_path = store[BACKEND_SESSION_KEY]
    except (KeyError, ValueError, TypeError, ValidationError):
        return None
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    user = load_backend(backend_path).get_user(user_id)
    if user is None or not hasattr(user, "get_session_auth_hash"):
        return None
    session_hash = store.get(HASH_SESSION_KEY)
    if not session_hash or not constant_time_compare(session_hash, user.get_session_auth_hash()):
        return None  # Django flushes it, or re-keys it under a fallback secret
    membership = membership_current(
        user=user, chosen_organization_id=store.get(ORGANIZATION_SESSION_KEY)
    )
    if membership is None:
        return None
    membership.user = user
    return SessionMember(session=store, membership=membership)
