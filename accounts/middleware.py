"""Resolve `request.organization` once per request (STYLE.md §3)."""

from __future__ import annotations

from accounts.selectors import membership_current

SESSION_KEY = "organization_id"


class OrganizationMiddleware:
    """Sets `request.organization` and `request.membership` for logged-in users.

    The organization is the one chosen in the session if the user still belongs
    to it, otherwise their first (`membership_current`). API-key requests are
    resolved by the DRF authentication class instead (accounts.authentication).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.organization = None
        request.membership = None
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            membership = membership_current(
                user=user, chosen_organization_id=request.session.get(SESSION_KEY)
            )
            if membership is not None:
                request.membership = membership
                request.organization = membership.organization
        return self.get_response(request)
