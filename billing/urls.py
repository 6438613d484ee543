from django.urls import path

from billing import views

urlpatterns = [
    path("settings/billing/", views.billing_settings, name="billing_settings"),
    path("settings/billing/upgrade/", views.billing_upgrade, name="billing_upgrade"),
    path("settings/billing/portal/", views.billing_portal, name="billing_portal"),
    path("billing/stripe/webhook", views.stripe_webhook, name="stripe_webhook"),
]
