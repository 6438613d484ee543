from django.urls import path

from analytics import views
from analytics.views import matrix as matrix_views
from analytics.views import revenue as revenue_views

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/first-call.json", views.first_call, name="first_call"),
    path("dashboard/live.json", views.live, name="live"),
    path("requests/", views.requests_log, name="requests"),
    path("requests/<str:request_id>/", views.request_detail, name="request_detail"),
    path("models/", views.models_table, name="models"),
    path("models/<path:value>/", views.model_detail, name="model_detail"),
    path("customers/", views.customers_table, name="customers"),
    path("customers/<path:value>/", views.customer_detail, name="customer_detail"),
    path("features/", views.features_table, name="features"),
    path("features/<path:value>/", views.feature_detail, name="feature_detail"),
    path("matrix/", matrix_views.matrix_page, name="matrix"),
    path("matrix/export.csv", matrix_views.matrix_export, name="matrix_export"),
    path("keys/", views.keys_table, name="keys"),
    path("keys/<int:value>/", views.key_detail, name="key_detail"),
    path("settings/revenue/", revenue_views.revenue_settings, name="revenue_settings"),
    path("settings/revenue/template.csv", revenue_views.revenue_template, name="revenue_template"),
    path(
        "settings/revenue/<int:entry_id>/delete/",
        revenue_views.revenue_entry_remove,
        name="revenue_entry_remove",
    ),
    path("simulate/", views.simulate_page, name="simulate"),
    path("simulate/features/", views.simulate_features_page, name="simulate_features"),
    path("traces/", views.traces, name="traces"),
    path("traces/<path:trace_id>/", views.trace_detail, name="trace_detail"),
]
