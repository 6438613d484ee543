"""Dashboard pages (server-rendered). Views parse the request, call selectors, render."""

from analytics.views.details import (
    customer_detail,
    feature_detail,
    key_detail,
    model_detail,
    request_detail,
    trace_detail,
    traces,
)
from analytics.views.overview import dashboard, first_call, live
from analytics.views.requests import requests_log
from analytics.views.simulate import simulate_features_page, simulate_page
from analytics.views.tables import customers_table, features_table, keys_table, models_table

__all__ = [
    "customer_detail",
    "customers_table",
    "dashboard",
    "feature_detail",
    "features_table",
    "first_call",
    "key_detail",
    "keys_table",
    "live",
    "model_detail",
    "models_table",
    "request_detail",
    "requests_log",
    "simulate_features_page",
    "simulate_page",
    "trace_detail",
    "traces",
]
