"""/api/budgets, /api/alert-channels, /api/alerts. Reads: any key with `read`
or a session; writes: a key with `manage`, or an owner or admin session.
Validation is alerts.services' (the same rules as the pages)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from accounts.permissions import CanManage, HasOrganization
from alerts import selectors, services
from alerts.models import BudgetAction, BudgetPeriod, BudgetScope, ChannelKind
from alerts.selectors import BudgetStatus
from analytics.api.base import OrgAPIView, money_str
from billing.permissions import PlanFeature


def _iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def budget_json(status: BudgetStatus) -> dict[str, Any]:
    budget = status.budget
    return {
        "id": budget.pk,
        "name": budget.name,
        "scope": budget.scope,
        "scope_value": budget.scope_value,
        "period": budget.period,
        "amount": money_str(budget.amount),
        "thresholds": budget.thresholds,
        "action": budget.action,
        "channels": sorted(channel.pk for channel in budget.channels.all()),
        "is_active": budget.is_active,
        "spend": money_str(status.spend),
        "percent_used": money_str(status.percent_used),
        "projected": None if status.projected is None else money_str(status.projected),
        "period_start": _iso(status.period_start),
        "period_end": _iso(status.period_end),
        "status": status.status,
    }


def channel_json(channel) -> dict[str, Any]:
    return {
        "id": channel.pk,
        "name": channel.name,
        "kind": channel.kind,
        "target": channel.target,
        "is_active": channel.is_active,
    }


def alert_json(event) -> dict[str, Any]:
    return {
        "id": str(event.uid),
        "type": event.kind,
        "budget": event.budget_id,
        "period_start": event.period_start.isoformat() if event.period_start else None,
        "threshold": event.threshold,
        "spend": money_str(event.spend),
        "fired_at": _iso(event.fired_at),
        "data": event.data,
    }


def _status(organization, budget) -> BudgetStatus:
    return selectors.budget_status(organization=organization, budget=budget, forecast=True)


class BudgetSchema(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=BudgetScope.choices)
    scope_value = serializers.CharField(required=False, allow_blank=True)
    period = serializers.ChoiceField(choices=BudgetPeriod.choices)
    amount = serializers.DecimalField(max_digits=20, decimal_places=10, help_text="USD")
    thresholds = serializers.ListField(child=serializers.IntegerField(), required=False)
    action = serializers.ChoiceField(choices=BudgetAction.choices)
    channels = serializers.ListField(child=serializers.IntegerField(), required=False)
    is_active = serializers.BooleanField(required=False)
    spend = serializers.DecimalField(max_digits=20, decimal_places=10, read_only=True)
    percent_used = serializers.DecimalField(max_digits=20, decimal_places=2, read_only=True)
    projected = serializers.DecimalField(
        max_digits=20,
        decimal_places=10,
        read_only=True,
        help_text="spend at the period's end at the current run rate: spend so far + the "
        "last 7 complete days' daily average × the days left (the overview's month-end rule)",
    )
    period_start = serializers.DateTimeField(read_only=True)
    period_end = serializers.DateTimeField(read_only=True, help_text="exclusive")
    status = serializers.ChoiceField(choices=["ok", "warning", "exceeded"], read_only=True)


class ChannelSchema(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=ChannelKind.choices)
    target = serializers.CharField()
    is_active = serializers.BooleanField(required=False)


AlertSchema = inline_serializer(
    "Alert",
    {
        "id": serializers.UUIDField(),
        "type": serializers.CharField(),
        "budget": serializers.IntegerField(allow_null=True),
        "period_start": serializers.DateField(allow_null=True),
        "threshold": serializers.IntegerField(allow_null=True),
        "spend": serializers.DecimalField(max_digits=20, decimal_places=10),
        "fired_at": serializers.DateTimeField(),
        "data": serializers.JSONField(),
    },
)


class _ManageWrites(OrgAPIView):
    parser_classes = [JSONParser]
    plan_feature = "alerts"  # billing.permissions.PlanFeature

    def get_permissions(self):
        if self.request.method in SAFE_METHODS:
            return [HasOrganization(), PlanFeature()]
        return [HasOrganization(), PlanFeature(), CanManage()]

    def handle_exception(self, exc):
        if isinstance(exc, ValidationError):
            detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
            return Response(detail, status=400)
        return super().handle_exception(exc)

    def body(self) -> dict[str, Any]:
        data = self.request.data
        if not isinstance(data, dict):
            raise ValidationError({"detail": "Send a JSON object."})
        return data


class BudgetListView(_ManageWrites):
    @extend_schema(
        summary="Budgets with their current period's spend", responses=BudgetSchema(many=True)
    )
    def get(self, request):
        statuses = selectors.budget_statuses(organization=self.organization, forecast=True)
        return Response([budget_json(status) for status in statuses])

    @extend_schema(
        summary="Create a budget (manage scope)",
        request=BudgetSchema,
        responses={201: BudgetSchema},
    )
    def post(self, request):
        org = self.organization
        created_by = request.user if getattr(request.user, "pk", None) else None
        budget = services.budget_create(organization=org, created_by=created_by, data=self.body())
        return Response(budget_json(_status(org, budget)), 201)


class BudgetDetailView(_ManageWrites):
    def _get(self, budget_id: int):
        return selectors.budget_get_for_org(organization=self.organization, id=budget_id)

    @extend_schema(summary="One budget", responses=BudgetSchema)
    def get(self, request, budget_id: int):
        return Response(budget_json(_status(self.organization, self._get(budget_id))))

    @extend_schema(
        summary="Change a budget (manage scope)",
        request=BudgetSchema(partial=True),
        responses=BudgetSchema,
    )
    def patch(self, request, budget_id: int):
        org = self.organization
        budget = services.budget_update(
            organization=org, budget=self._get(budget_id), data=self.body()
        )
        return Response(budget_json(_status(org, budget)))

    @extend_schema(summary="Delete a budget (manage scope)", responses={204: None})
    def delete(self, request, budget_id: int):
        services.budget_delete(organization=self.organization, budget=self._get(budget_id))
        return Response(status=204)


class ChannelListView(_ManageWrites):
    @extend_schema(summary="Alert channels", responses=ChannelSchema(many=True))
    def get(self, request):
        channels = selectors.alert_channel_list(organization=self.organization)
        return Response([channel_json(channel) for channel in channels])

    @extend_schema(
        summary="Create an alert channel (manage scope)",
        description="A webhook channel's signing `secret` is in this response only.",
        request=ChannelSchema,
        responses={201: ChannelSchema},
    )
    def post(self, request):
        channel = services.alert_channel_create(organization=self.organization, data=self.body())
        out = channel_json(channel)
        if channel.secret:
            out["secret"] = channel.secret
        return Response(out, status=201)


class ChannelDetailView(_ManageWrites):
    def _get(self, channel_id: int):
        return selectors.alert_channel_get_for_org(organization=self.organization, id=channel_id)

    @extend_schema(summary="One alert channel", responses=ChannelSchema)
    def get(self, request, channel_id: int):
        return Response(channel_json(self._get(channel_id)))

    @extend_schema(
        summary="Change an alert channel (manage scope)",
        request=ChannelSchema(partial=True),
        responses=ChannelSchema,
    )
    def patch(self, request, channel_id: int):
        channel = services.alert_channel_update(
            organization=self.organization, channel=self._get(channel_id), data=self.body()
        )
        return Response(channel_json(channel))

    @extend_schema(summary="Delete an alert channel (manage scope)", responses={204: None})
    def delete(self, request, channel_id: int):
        services.alert_channel_delete(organization=self.organization, channel=self._get(channel_id))
        return Response(status=204)


class AlertListView(_ManageWrites):
    @extend_schema(summary="Alerts raised, newest first (up to 500)", responses=AlertSchema)
    def get(self, request):
        events = selectors.alert_event_list(organization=self.organization)[:500]
        return Response([alert_json(event) for event in events])
