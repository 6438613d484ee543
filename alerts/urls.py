from django.urls import path

from alerts import views

urlpatterns = [
    path("settings/budgets/", views.budgets, name="budgets"),
    path("settings/budgets/new/", views.budget_new, name="budget_new"),
    path("settings/budgets/<int:budget_id>/", views.budget_edit, name="budget_edit"),
    path("settings/budgets/<int:budget_id>/delete/", views.budget_delete, name="budget_delete"),
    path("settings/alert-channels/", views.channels, name="alert_channels"),
    path("settings/alert-channels/<int:channel_id>/", views.channel_detail, name="alert_channel"),
    path(
        "settings/alert-channels/<int:channel_id>/test/",
        views.channel_test,
        name="alert_channel_test",
    ),
    path(
        "settings/alert-channels/<int:channel_id>/delete/",
        views.channel_delete,
        name="alert_channel_delete",
    ),
    path("settings/alerts/", views.alert_history, name="alert_history"),
]
