"""Feature gating of the REST API by plan (AISPENDTRACK_BILLING=off unlocks all)."""

from __future__ import annotations

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from billing.selectors import feature_denial


class PlanFeature(BasePermission):
    """The organization's plan includes the view's `plan_feature` ("api" unless
    the view says otherwise; None: never gated, e.g. GET /api/plan)."""

    def has_permission(self, request, view) -> bool:
        organization = getattr(request._request, "organization", None)
        feature = getattr(view, "plan_feature", "api")
        if organization is None or feature is None:
            return True  # HasOrganization speaks for the unauthenticated
        message = feature_denial(organization=organization, feature=feature)
        if message is not None:
            raise PermissionDenied({"detail": message, "code": "plan_feature_required"})
        return True
