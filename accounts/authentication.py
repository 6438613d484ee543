"""REST API authentication: `Authorization: Bearer ask_…` (a key with the `read`
or the `manage` scope; accounts.permissions decides what each may do)."""

from __future__ import annotations

import time

from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import Organization, Scope
from accounts.selectors import KeyIdentity, api_key_authenticate
from accounts.services import api_key_touch_many

_touched: dict[int, float] = {}


class ApiKeyUser:
    """The principal of an API-key request: not a person, just a key."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, identity: KeyIdentity):
        self.identity = identity

    def __str__(self) -> str:
        return f"api key {self.identity.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0] != self.keyword or not parts[1].startswith("ask_"):
            return None  # not ours: let session auth (or the 401) speak
        identity = api_key_authenticate(parts[1])
        if identity is None:
            raise exceptions.AuthenticationFailed(
                "This API key is unknown or revoked; create one in Settings → API keys."
            )
        if not (identity.has_scope(Scope.READ) or identity.has_scope(Scope.MANAGE)):
            raise exceptions.PermissionDenied(
                "This API key lacks the `read` scope (and `manage`, for writes); create a "
                "key with `read` in Settings → API keys."
            )
        request._request.organization = Organization.objects.get(pk=identity.organization_id)
        _touch(identity.key_id)
        return ApiKeyUser(identity), identity

    def authenticate_header(self, request):
        return self.keyword


def _touch(key_id: int) -> None:
    now = time.monotonic()
    if now - _touched.get(key_id, 0.0) >= 60:
        _touched[key_id] = now
        api_key_touch_many(key_ids=[key_id], at=timezone.now())
