from rest_framework.permissions import BasePermission


class HasOrganization(BasePermission):
    """Authenticated by key or session, and resolved to an organization."""

    message = "Log in or send `Authorization: Bearer ask_…` with a key that has `read` scope."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and getattr(request._request, "organization", None) is not None
        )
