from django.urls import path

from accounts import views

urlpatterns = [
    path("settings/api-keys/", views.api_keys, name="api_keys"),
    path("settings/api-keys/<int:key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("settings/organization/", views.org_settings, name="org_settings"),
    path("settings/team/", views.team, name="team"),
    path("settings/team/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("settings/team/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path(
        "settings/team/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("invite/<str:token>/", views.invite_accept, name="invite_accept"),
    path("organizations/new/", views.org_create, name="org_create"),
    path("organizations/switch/", views.org_switch, name="org_switch"),
]
