from __future__ import annotations

from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.contrib import messages

from accounts.models import Role, Scope

INVITE_SESSION_KEY = "pending_invitation_token"


class SignupForm(AllauthSignupForm):
    """Email + password, plus the organization the new user will own.

    When the visitor arrived through an invitation link, the organization
    field is optional: they join the inviting organization instead.
    """

    organization_name = forms.CharField(
        max_length=120,
        label="Organization",
        widget=forms.TextInput(attrs={"placeholder": "Acme Inc.", "autocomplete": "organization"}),
    )

    field_order = ["organization_name", "email", "password1", "password2"]

    def __init__(self, *args, request=None, **kwargs):
        super().__init__(*args, **kwargs)
        if request is not None and request.session.get(INVITE_SESSION_KEY):
            self.fields["organization_name"].required = False
            self.fields[
                "organization_name"
            ].help_text = "Optional: you are joining the organization that invited you."

    def save(self, request):
        from accounts.selectors import invitation_get_by_token
        from accounts.services import AccountError, invitation_accept, organization_create

        user = super().save(request)
        token = request.session.pop(INVITE_SESSION_KEY, None)
        invitation = invitation_get_by_token(token=token) if token else None
        joined = False
        if invitation is not None and invitation.email.lower() == user.email.lower():
            try:
                invitation_accept(invitation=invitation, user=user)
                joined = True
            except AccountError as error:
                messages.warning(request, str(error))
        name = self.cleaned_data.get("organization_name", "").strip()
        if name or not joined:
            organization_create(name=name or f"{user.email}'s organization", owner=user)
        return user


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "e.g. production backend"}),
    )
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[Scope.PROXY, Scope.READ],
        error_messages={"required": "Choose at least one scope."},
    )


class InviteForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"placeholder": "teammate@example.com"}))
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args, roles: list[tuple[str, str]] | None = None, **kwargs) -> None:
        """`roles`: what the inviter may offer (services.roles_grantable)."""
        super().__init__(*args, **kwargs)
        if roles is not None:
            role = self.fields["role"]
            assert isinstance(role, forms.ChoiceField)  # noqa: S101 (declared above)
            role.choices = roles


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=120)


def _timezone_choices() -> list[tuple[str, str]]:
    from zoneinfo import available_timezones

    return [(name, name.replace("_", " ")) for name in sorted(available_timezones())]


class OrganizationSettingsForm(forms.Form):
    name = forms.CharField(max_length=120)
    timezone = forms.ChoiceField(
        choices=_timezone_choices,
        help_text="Dashboards and date filters count days in this time zone.",
    )
