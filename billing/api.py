"""GET /api/plan: the organization's plan, limits and usage. Never gated."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Role
from accounts.permissions import CanManage, HasOrganization
from accounts.selectors import KeyIdentity
from billing import gdpr
from billing.models import DataExport
from billing.selectors import plan_effective, plan_usage
from billing.tasks import organization_export_task


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


# --- GDPR export through the API (a `manage` key, or an owner's session) ----------


class _ExportAPIBase(APIView):
    permission_classes = [HasOrganization, CanManage]
    plan_feature = None  # the right to one's data is on every plan

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not isinstance(request.auth, KeyIdentity):
            membership = getattr(request._request, "membership", None)
            if membership is None or membership.role != Role.OWNER:
                raise PermissionDenied("Only owners (or a key with the manage scope) can export.")

    def _export(self, export_id: int) -> DataExport:
        organization = getattr(self.request._request, "organization", None)
        export = DataExport.objects.filter(organization=organization, pk=export_id).first()
        if export is None:
            raise NotFound("No such export.")
        return export


def _export_json(export: DataExport) -> dict:
    ready = gdpr.data_export_path(export) is not None
    return {
        "id": export.pk,
        "status": "expired" if export.status == "ready" and not ready else export.status,
        "created_at": _iso(export.created_at),
        "expires_at": _iso(export.expires_at),
        "size_bytes": export.size_bytes,
        "download_url": f"/api/organization/export/{export.pk}/download" if ready else None,
    }


class OrganizationExportView(_ExportAPIBase):
    @extend_schema(
        summary="Start an export of all the organization's data (zip of JSON Lines)",
        request=None,
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request):
        organization = request._request.organization
        user = request.user if getattr(request.user, "pk", None) else None
        export = gdpr.data_export_request(organization=organization, user=user)
        base_url = settings.AISPENDTRACK_PUBLIC_URL or request.build_absolute_uri("/")
        transaction.on_commit(lambda: organization_export_task.delay(export.pk, base_url))
        return Response(_export_json(export), status=202)


class OrganizationExportDetailView(_ExportAPIBase):
    @extend_schema(
        summary="An export's status and, once ready, its download URL (24 hours)",
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request, export_id: int):
        return Response(_export_json(self._export(export_id)))


class OrganizationExportDownloadView(_ExportAPIBase):
    @extend_schema(
        summary="Download a ready export (application/zip)",
        responses={(200, "application/zip"): OpenApiTypes.BINARY},
    )
    def get(self, request, export_id: int):
        path = gdpr.data_export_path(self._export(export_id))
        if path is None:
            raise NotFound("This export is not ready or has expired (exports last 24 hours).")
        return FileResponse(path.open("rb"), as_attachment=True, filename=path.name)
