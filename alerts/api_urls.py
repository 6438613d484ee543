"""Budgets and alerts in the REST API, mounted under /api/ (config/urls.py)."""

from django.urls import path

from alerts import api

urlpatterns = [
    path("budgets", api.BudgetListView.as_view(), name="api_budgets"),
    path("budgets/<int:budget_id>", api.BudgetDetailView.as_view(), name="api_budget"),
    path("alert-channels", api.ChannelListView.as_view(), name="api_alert_channels"),
    path(
        "alert-channels/<int:channel_id>", api.ChannelDetailView.as_view(), name="api_alert_channel"
    ),
    path("alerts", api.AlertListView.as_view(), name="api_alerts"),
]
