from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.models import Scope
from accounts.selectors import KeyIdentity


class HasOrganization(BasePermission):
    """Authenticated by key or session, and resolved to an organization. A key
    reads with the `read` scope; a write needs `read` or `manage` here, and
    CanManage, which every write view carries, then asks for `manage`: so a
    manage-only key can write (revenue, budgets) but not read."""

    message = "Log in or send `Authorization: Bearer ask_…` with a key that has `read` scope."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (
            user
            and user.is_authenticated
            and getattr(request._request, "organization", None) is not None
        ):
            return False
        if not isinstance(request.auth, KeyIdentity):
            return True
        if request.auth.has_scope(Scope.READ):
            return True
        return request.method not in SAFE_METHODS and request.auth.has_scope(Scope.MANAGE)


class CanManage(BasePermission):
    """Writes that change what an organization reports (revenue, budgets): a key
    with the `manage` scope, or a logged-in owner or admin."""

    message = (
        "This needs an API key with the `manage` scope (create one in Settings → API keys) "
        "or an owner or admin session."
    )

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, KeyIdentity):
            return request.auth.has_scope(Scope.MANAGE)
        membership = getattr(request._request, "membership", None)
        return membership is not None and membership.can_manage
