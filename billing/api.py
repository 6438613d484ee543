"""GET /api/plan: the organization's plan, limits and usage. Never gated."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasOrganization
from billing.selectors import plan_effective, plan_usage


def _iso(value):
    return value.isoformat().replace("+00:00", "Z") if value else None


class PlanView(APIView):
    # Any read key or session, on every plan: an organization must always be
    # able to see why it is limited (billing.permissions gates the others).
    permission_classes = [HasOrganization]

    @extend_schema(
        summary="The organization's plan, its limits and this period's usage",
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        organization = request._request.organization
        effective = plan_effective(organization=organization)
        usage = plan_usage(organization=organization)
        subscription = effective.subscription
        plan = effective.plan
        return Response(
            {
                "organization": {
                    "id": organization.pk,
                    "slug": organization.slug,
                    "name": organization.name,
                },
                "plan": plan.slug,
                "status": effective.status,
                "trial_end": _iso(subscription.trial_end if subscription else None),
                "current_period_end": _iso(
                    subscription.current_period_end if subscription else None
                ),
                "limits": {
                    "monthly_calls": plan.monthly_call_limit,
                    "hourly_requests": plan.hourly_request_limit,
                    "retention_days": effective.retention_days,
                },
                "usage": {
                    "calls_this_month": usage.calls_this_month,
                    "requests_this_hour": usage.requests_this_hour,
                },
            }
        )
