"""The read API, mounted under /api/ (config/urls.py)."""

from django.urls import path

from analytics.api import docs, export, revenue, simulate, views

urlpatterns = [
    path("costs", views.RecordsView.as_view(), name="api_costs"),
    path("costs/summary", views.SummaryView.as_view(), name="api_costs_summary"),
    path("costs/daily", views.DailyView.as_view(), name="api_costs_daily"),
    path("costs/export", export.ExportView.as_view(), name="api_costs_export"),
    path("costs/by-model/<path:value>", views.ModelDetailView.as_view(), name="api_by_model"),
    path(
        "costs/by-customer/<path:value>",
        views.CustomerDetailView.as_view(),
        name="api_by_customer",
    ),
    path("costs/by-feature/<path:value>", views.FeatureDetailView.as_view(), name="api_by_feature"),
    path("costs/by-key/<int:value>", views.KeyDetailView.as_view(), name="api_by_key"),
    path("customers", views.CustomerListView.as_view(), name="api_customers"),
    path("features", views.FeatureListView.as_view(), name="api_features"),
    path("models", views.ModelListView.as_view(), name="api_models"),
    path("revenue", revenue.RevenueView.as_view(), name="api_revenue"),
    path("revenue/<int:entry_id>", revenue.RevenueEntryView.as_view(), name="api_revenue_entry"),
    path("simulate", simulate.SimulateView.as_view(), name="api_simulate"),
    path(
        "simulate/features", simulate.SimulateFeaturesView.as_view(), name="api_simulate_features"
    ),
    path("traces/<path:trace_id>", views.TraceView.as_view(), name="api_trace"),
    path("schema", docs.schema_view, name="api_schema"),
    path("docs", docs.docs_view, name="api_docs"),
]
