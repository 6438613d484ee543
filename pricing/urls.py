from django.urls import path

from pricing import views

urlpatterns = [
    path("pricing/models", views.models_public, name="pricing_models"),
    path("settings/pricing/", views.pricing_settings, name="pricing_settings"),
    path(
        "settings/pricing/<int:override_id>/edit/",
        views.price_override_edit,
        name="price_override_edit",
    ),
    path(
        "settings/pricing/<int:override_id>/delete/",
        views.price_override_delete,
        name="price_override_delete",
    ),
    path("settings/pricing/reprice/", views.pricing_reprice, name="pricing_reprice"),
]
