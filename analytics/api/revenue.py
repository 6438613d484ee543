"""/api/revenue: read, import (POST, `manage` scope) and delete revenue entries."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from accounts.permissions import CanManage
from analytics.api.base import OrgAPIView, money_str
from analytics.models import RevenueEntry, RevenueSource
from analytics.params import parse_int
from analytics.revenue import MAX_ROWS, REVENUE_FIELDS, revenue_entry_delete, revenue_import
from analytics.selectors.revenue import revenue_entries, revenue_entry_get_for_org


def entry_json(entry: RevenueEntry) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "customer_id": entry.customer_id,
        "amount": money_str(entry.amount),
        "period_start": entry.period_start.isoformat(),
        "period_end": entry.period_end.isoformat(),
        "source": entry.source,
        "external_id": entry.external_id,
        "created_at": entry.created_at.isoformat().replace("+00:00", "Z"),
    }


class _ManageWrites(OrgAPIView):
    """Reads: a `read` key or a session; writes: a `manage` key (no `read`
    needed) or an owner/admin session. The plan must include the REST API."""

    def get_permissions(self):
        permissions = list(super().get_permissions())  # the REST API's defaults
        if self.request.method not in SAFE_METHODS:
            permissions.append(CanManage())
        return permissions


class RevenueEntryInSchema(serializers.Serializer):
    customer_id = serializers.CharField(max_length=256, help_text="as in x-customer-id")
    amount = serializers.DecimalField(
        max_digits=20, decimal_places=10, help_text="USD, best sent as a string"
    )
    period_start = serializers.DateField()
    period_end = serializers.DateField(help_text="inclusive")
    external_id = serializers.CharField(
        max_length=256, help_text="unique per source: a re-import replaces the entry"
    )


class RevenueView(_ManageWrites):
    allowed_params = ("customer_id", "page", "per_page")
    parser_classes = [JSONParser]

    @extend_schema(
        summary="Revenue entries, newest period first",
        parameters=[
            OpenApiParameter("customer_id", OpenApiTypes.STR, description="Exact match."),
            OpenApiParameter("page", OpenApiTypes.INT),
            OpenApiParameter("per_page", OpenApiTypes.INT, description="1–500, default 100"),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        params = request.query_params
        page = parse_int(params, "page", default=1, minimum=1, maximum=100_000)
        per_page = parse_int(params, "per_page", default=100, minimum=1, maximum=500)
        customer_id = (params.get("customer_id") or "").strip() or None
        entries, count = revenue_entries(
            organization=self.organization,
            customer_id=customer_id,
            limit=per_page,
            offset=(page - 1) * per_page,
        )
        return Response(
            {
                "results": [entry_json(e) for e in entries],
                "count": count,
                "page": page,
                "pages": max(1, -(-count // per_page)),
            }
        )

    @extend_schema(
        summary="Import revenue: a JSON list of entries (needs the manage scope)",
        description=f"Each entry: {', '.join(REVENUE_FIELDS)}. amount is USD (send it as a "
        "string to keep every digit), spread evenly over period_start..period_end (inclusive "
        "ISO dates). An entry whose external_id was imported through the API before replaces "
        "it. Good rows are saved even when others are rejected; each rejection names its row "
        f"(0-based) and the reason. At most {MAX_ROWS:,} rows a request.",
        request={"application/json": RevenueEntryInSchema(many=True)},
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request):
        rows = request.data
        if not isinstance(rows, list):
            return Response(
                {
                    "detail": "Send a JSON list of revenue entries: [{"
                    + ", ".join(f'"{name}": …' for name in REVENUE_FIELDS)
                    + "}, …]."
                },
                status=400,
            )
        if len(rows) > MAX_ROWS:
            return Response(
                {"detail": f"At most {MAX_ROWS:,} entries a request; got {len(rows):,}."},
                status=400,
            )
        result = revenue_import(organization=self.organization, source=RevenueSource.API, rows=rows)
        return Response(
            {
                "created": result.created,
                "updated": result.updated,
                "rejected": len(result.rejected),
                "errors": [
                    {"row": r.row, "external_id": r.external_id, "reason": r.reason}
                    for r in result.rejected
                ],
            }
        )


class RevenueEntryView(_ManageWrites):
    @extend_schema(
        summary="One revenue entry",
        operation_id="revenue_entry_retrieve",
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request, entry_id: int):
        entry = revenue_entry_get_for_org(organization=self.organization, entry_id=entry_id)
        return Response(entry_json(entry))

    @extend_schema(summary="Delete one revenue entry (needs the manage scope)", responses=None)
    def delete(self, request, entry_id: int):
        entry = revenue_entry_get_for_org(organization=self.organization, entry_id=entry_id)
        revenue_entry_delete(organization=self.organization, entry=entry)
        return Response(status=204)
