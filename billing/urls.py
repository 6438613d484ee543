from django.urls import path

from billing import views

urlpatterns = [
    path("settings/billing/", views.billing_settings, name="billing_settings"),
    path("settings/billing/upgrade/", views.billing_upgrade, name="billing_upgrade"),
    path("settings/billing/portal/", views.billing_portal, name="billing_portal"),
    path("billing/stripe/webhook", views.stripe_webhook, name="stripe_webhook"),
    path("settings/organization/export/", views.organization_export, name="org_export"),
    path(
        "settings/organization/exports/<int:export_id>/download/",
        views.organization_export_download,
        name="org_export_download",
    ),
    path("settings/organization/delete/", views.organization_delete, name="org_delete"),
    path("settings/account/", views.account_settings, name="account_settings"),
]
