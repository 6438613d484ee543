from django.contrib import admin
from django.urls import include, path

from accounts import views as account_views
from accounts.throttle import throttled_admin_login
from billing import api as billing_api
from billing.api import PlanView
from config import views

admin.site.site_header = "AiSpendTrack admin"
# Throttled like the user login (accounts/throttle.py).
admin.site.login = throttled_admin_login(admin.site.login)  # type: ignore[method-assign]
admin.site.site_title = "AiSpendTrack admin"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("accounts/signup/", account_views.SignupView.as_view(), name="account_signup"),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts.urls")),
    path("", include("alerts.urls")),
    path("", include("analytics.urls")),
    path("", include("pricing.urls")),
    path("api/plan", PlanView.as_view(), name="api_plan"),
    path("api/organization/export", billing_api.OrganizationExportView.as_view()),
    path(
        "api/organization/export/<int:export_id>",
        billing_api.OrganizationExportDetailView.as_view(),
    ),
    path(
        "api/organization/export/<int:export_id>/download",
        billing_api.OrganizationExportDownloadView.as_view(),
    ),
    path("", include("billing.urls")),
    path("api/", include("analytics.api_urls")),
    path("api/", include("alerts.api_urls")),
]
