"""Settings → Budgets, Settings → Alert channels, and the alert history.
Members read; owners and admins create, edit and delete. Views parse, call, render."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.decorators import manager_required, organization_required
from alerts import selectors, services
from alerts.events import alert_channel_test
from alerts.forms import BudgetForm, ChannelForm
from billing.decorators import plan_feature_required


def _errors_into(form, error: ValidationError) -> None:
    for field, messages_ in error.message_dict.items():
        form.add_error(field if field in form.fields else None, messages_)


@organization_required
@plan_feature_required("alerts")
def budgets(request):
    org = request.organization
    return render(
        request,
        "alerts/budgets.html",
        {"statuses": selectors.budget_statuses(organization=org, forecast=True)},
    )


def _budget_form_page(request, form, *, budget=None, status=200):
    org = request.organization
    return render(
        request,
        "alerts/budget_form.html",
        {
            "form": form,
            "budget": budget,
            "choices": selectors.scope_value_choices(organization=org),
        },
        status=status,
    )


@manager_required
@plan_feature_required("alerts")
def budget_new(request):
    org = request.organization
    channels = selectors.alert_channel_list(organization=org)
    if request.method == "POST":
        form = BudgetForm(request.POST, channels=channels)
        if form.is_valid():
            try:
                budget = services.budget_create(
                    organization=org, created_by=request.user, data=form.data_for_service()
                )
            except ValidationError as error:
                _errors_into(form, error)
            else:
                messages.success(request, f"Budget “{budget.name}” created.")
                return redirect("budgets")
        return _budget_form_page(request, form, status=400)
    return _budget_form_page(request, BudgetForm(channels=channels))


@organization_required
@plan_feature_required("alerts")
def budget_edit(request, budget_id: int):
    org = request.organization
    budget = selectors.budget_get_for_org(organization=org, id=budget_id)
    channels = selectors.alert_channel_list(organization=org)
    if request.method == "POST":
        if not request.membership.can_manage:
            raise PermissionDenied("Only owners and admins can change budgets.")
        form = BudgetForm(request.POST, channels=channels)
        if form.is_valid():
            try:
                services.budget_update(
                    organization=org, budget=budget, data=form.data_for_service()
                )
            except ValidationError as error:
                _errors_into(form, error)
            else:
                messages.success(request, f"Budget “{budget.name}” saved.")
                return redirect("budgets")
        return _budget_form_page(request, form, budget=budget, status=400)
    initial = {
        "name": budget.name,
        "scope": budget.scope,
        "scope_value": budget.scope_value,
        "period": budget.period,
        "amount": budget.amount.normalize(),
        "thresholds": ", ".join(str(t) for t in budget.thresholds),
        "action": budget.action,
        "channels": [str(c.pk) for c in budget.channels.all()],
        "is_active": budget.is_active,
    }
    form = BudgetForm(initial=initial, channels=channels)
    return _budget_form_page(request, form, budget=budget)


@manager_required
@plan_feature_required("alerts")
def budget_delete(request, budget_id: int):
    org = request.organization
    budget = selectors.budget_get_for_org(organization=org, id=budget_id)
    if request.method == "POST":
        services.budget_delete(organization=org, budget=budget)
        messages.success(request, f"Budget “{budget.name}” deleted.")
        return redirect("budgets")
    return render(request, "alerts/budget_delete.html", {"budget": budget})


@organization_required
@plan_feature_required("alerts")
def channels(request):
    org = request.organization
    form = ChannelForm()
    secret_channel = None
    status = 200
    if request.method == "POST":
        if not request.membership.can_manage:
            raise PermissionDenied("Only owners and admins can add alert channels.")
        form = ChannelForm(request.POST)
        if form.is_valid():
            try:
                channel = services.alert_channel_create(organization=org, data=form.cleaned_data)
            except ValidationError as error:
                _errors_into(form, error)
                status = 400
            else:
                messages.success(request, f"Channel “{channel.name}” added.")
                if not channel.secret:
                    return redirect("alert_channels")
                secret_channel, form = channel, ChannelForm()
        else:
            status = 400
    return render(
        request,
        "alerts/channels.html",
        {
            "channels": selectors.alert_channel_list(organization=org),
            "form": form,
            "secret_channel": secret_channel,
        },
        status=status,
    )


@organization_required
@plan_feature_required("alerts")
def channel_detail(request, channel_id: int):
    org = request.organization
    channel = selectors.alert_channel_get_for_org(organization=org, id=channel_id)
    deliveries = selectors.delivery_list(organization=org, channel=channel)[:100]
    return render(
        request, "alerts/channel_detail.html", {"channel": channel, "deliveries": deliveries}
    )


@manager_required
@require_POST
@plan_feature_required("alerts")
def channel_test(request, channel_id: int):
    org = request.organization
    channel = selectors.alert_channel_get_for_org(organization=org, id=channel_id)
    alert_channel_test(organization=org, channel=channel)
    messages.success(request, "Test alert queued; its delivery appears below within seconds.")
    return redirect("alert_channel", channel_id=channel.pk)


@manager_required
@plan_feature_required("alerts")
def channel_delete(request, channel_id: int):
    org = request.organization
    channel = selectors.alert_channel_get_for_org(organization=org, id=channel_id)
    if request.method == "POST":
        services.alert_channel_delete(organization=org, channel=channel)
        messages.success(request, f"Channel “{channel.name}” deleted.")
        return redirect("alert_channels")
    return render(request, "alerts/channel_delete.html", {"channel": channel})


@organization_required
@plan_feature_required("alerts")
def alert_history(request):
    events = selectors.alert_event_list(organization=request.organization)[:200]
    return render(request, "alerts/history.html", {"events": events})
