"""Settings pages: API keys, team, organizations. Views parse, call, render."""

from __future__ import annotations

from allauth.account import views as allauth_views
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts import selectors, services
from accounts.decorators import manager_required, organization_required
from accounts.forms import (
    INVITE_SESSION_KEY,
    ApiKeyCreateForm,
    InviteForm,
    OrganizationForm,
    OrganizationSettingsForm,
    RoleForm,
)
from accounts.middleware import SESSION_KEY


class SignupView(allauth_views.SignupView):
    """allauth's sign-up, with the request handed to the form so that a visitor
    who came through an invitation link may leave the organization name empty."""

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["request"] = self.request
        return kwargs


def _keys_page(request, *, form, new_key=None, raw_key=None, status=200):
    return render(
        request,
        "accounts/api_keys.html",
        {
            "keys": selectors.api_key_list(organization=request.organization),
            "form": form,
            "new_key": new_key,
            "raw_key": raw_key,
            # setup snippets under a new key (accounts/_snippets.html)
            "base_url": (
                settings.AISPENDTRACK_PUBLIC_URL or request.build_absolute_uri("/")
            ).rstrip("/"),
        },
        status=status,
    )


@organization_required
def api_keys(request):
    """List keys; owners/admins can create. A new key's secret is shown once,
    in this response only (no redirect, so it never sits in a session row)."""
    if request.method == "POST":
        if not request.membership.can_manage:
            messages.error(request, "Only owners and admins can create API keys.")
            return redirect("api_keys")
        form = ApiKeyCreateForm(request.POST)
        if not form.is_valid():
            return _keys_page(request, form=form, status=400)
        key, raw = services.api_key_issue(
            organization=request.organization,
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            created_by=request.user,
        )
        return _keys_page(request, form=ApiKeyCreateForm(), new_key=key, raw_key=raw)
    return _keys_page(request, form=ApiKeyCreateForm())


@manager_required
def api_key_revoke(request, key_id: int):
    key = selectors.api_key_get_for_org(organization=request.organization, key_id=key_id)
    if request.method == "POST":
        services.api_key_revoke(organization=request.organization, key=key)
        messages.success(request, f"Key {key.prefix}… ({key.name}) is revoked.")
        return redirect("api_keys")
    return render(request, "accounts/api_key_revoke.html", {"key": key})


@organization_required
def team(request):
    organization = request.organization
    roles = services.roles_grantable(request.membership)
    form = InviteForm(roles=roles)
    invite_link = None
    if request.method == "POST":
        if not request.membership.can_manage:
            messages.error(request, "Only owners and admins can invite people.")
            return redirect("team")
        form = InviteForm(request.POST, roles=roles)
        if form.is_valid():
            try:
                invitation, token = services.invitation_create(
                    organization=organization,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    invited_by=request.user,
                )
            except services.AccountError as error:
                form.add_error("email", str(error))
            else:
                invite_link = request.build_absolute_uri(reverse("invite_accept", args=[token]))
                _send_invitation(request, invitation=invitation, link=invite_link)
                form = InviteForm(roles=roles)
    return render(
        request,
        "accounts/team.html",
        {
            "members": selectors.membership_list(organization=organization),
            "invitations": selectors.invitation_pending_list(organization=organization),
            "form": form,
            "invite_link": invite_link,
            "role_choices": roles,
            "grantable": [value for value, _ in roles],
        },
        status=400 if form.errors else 200,
    )


def _send_invitation(request, *, invitation, link: str) -> None:
    from django.core.mail import send_mail

    send_mail(
        subject=f"You're invited to {invitation.organization.name} on AiSpendTrack",
        message=(
            f"{request.user.email} invited you to join {invitation.organization.name} "
            f"on AiSpendTrack as {invitation.get_role_display().lower()}.\n\n"
            f"Accept the invitation (the link works once and expires on "
            f"{invitation.expires_at:%Y-%m-%d}):\n{link}\n"
        ),
        from_email=None,
        recipient_list=[invitation.email],
        fail_silently=True,
    )


@manager_required
@require_POST
def member_role(request, membership_id: int):
    membership = selectors.membership_get_for_org(
        organization=request.organization, membership_id=membership_id
    )
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            services.membership_role_change(
                organization=request.organization,
                membership=membership,
                role=form.cleaned_data["role"],
                by=request.membership,
            )
            messages.success(request, f"{membership.user.email} is now {membership.role}.")
        except services.AccountError as error:
            messages.error(request, str(error))
    return redirect("team")


@manager_required
def member_remove(request, membership_id: int):
    membership = selectors.membership_get_for_org(
        organization=request.organization, membership_id=membership_id
    )
    if request.method == "POST":
        try:
            services.membership_remove(
                organization=request.organization, membership=membership, by=request.membership
            )
            messages.success(request, f"{membership.user.email} was removed.")
        except services.AccountError as error:
            messages.error(request, str(error))
        return redirect("team")
    return render(request, "accounts/member_remove.html", {"target": membership})


@manager_required
@require_POST
def invitation_revoke(request, invitation_id: int):
    invitation = selectors.invitation_get_for_org(
        organization=request.organization, invitation_id=invitation_id
    )
    services.invitation_revoke(organization=request.organization, invitation=invitation)
    messages.success(request, f"The invitation for {invitation.email} was withdrawn.")
    return redirect("team")


def invite_accept(request, token: str):
    invitation = selectors.invitation_get_by_token(token=token)
    if invitation is None:
        return render(request, "accounts/invite_invalid.html", status=404)
    if not request.user.is_authenticated:
        # Remembered so that signing up (or logging in, then returning) joins.
        request.session[INVITE_SESSION_KEY] = token
        return render(request, "accounts/invite_accept.html", {"invitation": invitation})
    if request.method == "POST":
        try:
            membership = services.invitation_accept(invitation=invitation, user=request.user)
        except services.AccountError as error:
            messages.error(request, str(error))
            return redirect("invite_accept", token=token)
        request.session.pop(INVITE_SESSION_KEY, None)
        request.session[SESSION_KEY] = membership.organization_id
        messages.success(request, f"Welcome to {membership.organization.name}.")
        return redirect("home")
    return render(request, "accounts/invite_accept.html", {"invitation": invitation})


@organization_required
def org_settings(request):
    organization = request.organization
    initial = {"name": organization.name, "timezone": organization.timezone}
    form = OrganizationSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST":
        if not request.membership.can_manage:
            messages.error(request, "Only owners and admins can change organization settings.")
            return redirect("org_settings")
        if form.is_valid():
            services.organization_update(
                organization=organization,
                name=form.cleaned_data["name"],
                timezone_name=form.cleaned_data["timezone"],
            )
            messages.success(request, "Organization settings saved.")
            return redirect("org_settings")
    return render(
        request,
        "accounts/org_settings.html",
        {"form": form},
        status=400 if form.errors else 200,
    )


@login_required
def org_create(request):
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            organization = services.organization_create(
                name=form.cleaned_data["name"], owner=request.user
            )
        except services.AccountError as error:
            form.add_error("name", str(error))
        else:
            request.session[SESSION_KEY] = organization.pk
            return redirect("home")
    return render(
        request, "accounts/org_create.html", {"form": form}, status=400 if form.errors else 200
    )


@login_required
@require_POST
def org_switch(request):
    wanted = request.POST.get("organization_id", "")
    if (
        wanted.isdigit()
        and selectors.organizations_for_user(user=request.user).filter(pk=int(wanted)).exists()
    ):
        request.session[SESSION_KEY] = int(wanted)
    return redirect("home")
