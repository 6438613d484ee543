from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet

from accounts.models import ApiKey, Invitation, Membership, Organization, Role
from accounts.services import api_key_revoke, organizations_delete

LAST_OWNER = "An organization needs at least one owner; make someone else owner first."


def _other_owners(membership: Membership) -> bool:
    """Whether the membership's organization has an owner besides this one."""
    return (
        Membership.objects.filter(organization_id=membership.organization_id, role=Role.OWNER)
        .exclude(pk=membership.pk)
        .exists()
    )


def _is_last_owner(membership: Membership) -> bool:
    return membership.role == Role.OWNER and not _other_owners(membership)


class MembershipAdminForm(forms.ModelForm):
    """Staff edit memberships under the product's own rule: an organization
    never loses its last owner (the team page enforces it for members)."""

    class Meta:
        model = Membership
        fields = ["user", "organization", "role"]

    def clean(self):
        cleaned = super().clean() or {}
        stored = Membership.objects.filter(pk=self.instance.pk).first()
        if stored is None or not _is_last_owner(stored):
            return cleaned
        moved = cleaned.get("organization") not in (None, stored.organization)
        if cleaned.get("role") != Role.OWNER or moved:
            raise ValidationError(LAST_OWNER)
        return cleaned


class MembershipInlineFormSet(BaseInlineFormSet):
    """The organization page edits all its members at once: the owners left
    after the whole save are counted, so swapping owners in one save works."""

    def clean(self):
        super().clean()
        if self.instance.pk is None:
            return
        owners = 0
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or not form.cleaned_data:
                continue
            if form.cleaned_data.get("DELETE"):
                continue
            owners += form.cleaned_data.get("role") == Role.OWNER
        had_owner = Membership.objects.filter(organization=self.instance, role=Role.OWNER).exists()
        if had_owner and owners == 0:
            raise ValidationError(LAST_OWNER)


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipInlineFormSet
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "timezone", "created_at"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]

    # Through the service: it locks each organization against the ledger
    # writer before the cascade (no event may outlive its organization).
    def delete_model(self, request, obj):
        organizations_delete(ids=[obj.pk])

    def delete_queryset(self, request, queryset):
        organizations_delete(ids=queryset.values_list("pk", flat=True))


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipAdminForm
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "organization__name"]
    autocomplete_fields = ["user", "organization"]

    def has_delete_permission(self, request, obj=None):
        if obj is not None and _is_last_owner(obj):
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request, queryset):
        """The bulk delete action: refused whole if it would leave an
        organization without an owner."""
        doomed = set(queryset.values_list("pk", flat=True))
        owners = Membership.objects.filter(
            organization__in=queryset.values("organization"), role=Role.OWNER
        )
        by_org: dict[int, set[int]] = {}
        for organization_id, pk in owners.values_list("organization_id", "pk"):
            by_org.setdefault(organization_id, set()).add(pk)
        orphaned = [org for org, pks in by_org.items() if pks <= doomed]
        if orphaned:
            messages.error(request, f"Nothing was deleted. {LAST_OWNER}")
            return
        super().delete_queryset(request, queryset)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "prefix",
        "name",
        "organization",
        "scopes",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "organization__name"]
    # The hash is never shown, and keys are issued from the product, not here.
    exclude = ["key_hash"]
    readonly_fields = [
        "organization",
        "prefix",
        "scopes",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    actions = ["revoke_keys"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # Keys are revoked, never deleted: the ledger and its rollups refer to them.
        return False

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request, queryset):
        count = 0
        for key in queryset.select_related("organization").filter(revoked_at__isnull=True):
            api_key_revoke(organization=key.organization, key=key)
            count += 1
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "organization", "role", "created_at", "expires_at", "accepted_at"]
    search_fields = ["email", "organization__name"]
    exclude = ["token_hash"]
    readonly_fields = [
        "organization",
        "email",
        "role",
        "invited_by",
        "expires_at",
        "accepted_at",
        "revoked_at",
    ]

    def has_add_permission(self, request):
        return False
