"""GDPR: export all of an organization's data, delete an organization, delete an account.

"All of an organization's data" is every row of every model with an
`organization` foreign key (found from the app registry, so a new app's
tables are included without touching this module), plus the organization and
its members. Secrets never leave: key and invitation hashes, webhook signing
secrets and Slack webhook URLs are left out or masked.
"""

from __future__ import annotations

import json
import logging
import secrets
import zipfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import models, transaction
from django.utils import timezone

from accounts.models import ApiKey, Invitation, Membership, Organization, Role
from accounts.services import api_key_revoke, organizations_delete
from analytics.models import UsageEvent
from billing.models import DataExport, OrganizationDeletion
from billing.retention import BATCH_SIZE
from billing.stripe_sync import subscription_cancel_at_stripe

logger = logging.getLogger("aispendtrack.billing")

EXPORT_HOURS = 24
DELETION_DAYS = 30
# Fields whose values are secrets: never exported.
SECRET_FIELDS = frozenset({"key_hash", "token_hash", "secret", "password"})


class GdprError(Exception):
    """A request that breaks a GDPR rule; the message is for the user."""


def tenant_models() -> list[type[models.Model]]:
    """Every model with an `organization` foreign key (the tenant's tables);
    not unmanaged ones, which hold no rows of their own (analytics.MatchedEvent:
    a page's temporary copy of events, gone when the page is answered)."""
    found = []
    for model in apps.get_models():
        if not model._meta.managed:
            continue
        field = next(
            (f for f in model._meta.concrete_fields if f.name == "organization"),
            None,
        )
        if field is not None and field.related_model is Organization:
            found.append(model)
    return found


def _jsonable(value):
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _row(model: type[models.Model], row: dict) -> dict:
    row = {k: _jsonable(v) for k, v in row.items() if k not in SECRET_FIELDS}
    if model._meta.label_lower == "alerts.alertchannel" and row.get("kind") == "slack":
        row["target"] = "(Slack webhook URL withheld: it is a secret)"
    return row


def _write_jsonl(archive: zipfile.ZipFile, name: str, rows) -> int:
    count = 0
    with archive.open(name, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
            count += 1
    return count


def organization_export_build(*, organization: Organization, path: Path) -> dict[str, int]:
    """Write the zip of JSON Lines files; returns rows per file."""
    counts = {}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        counts["organization.jsonl"] = _write_jsonl(
            archive,
            "organization.jsonl",
            [
                {
                    "id": organization.pk,
                    "name": organization.name,
                    "slug": organization.slug,
                    "timezone": organization.timezone,
                    "created_at": organization.created_at.isoformat(),
                }
            ],
        )
        members = Membership.objects.filter(organization=organization).select_related("user")
        counts["members.jsonl"] = _write_jsonl(
            archive,
            "members.jsonl",
            (
                {"email": m.user.email, "role": m.role, "joined_at": m.created_at.isoformat()}
                for m in members
            ),
        )
        for model in tenant_models():
            if model is Membership:
                continue
            name = f"{model._meta.app_label}_{model._meta.model_name}.jsonl"
            rows = (
                model._default_manager.filter(organization=organization)
                .order_by("pk")
                .values()
                .iterator(chunk_size=2000)
            )
            counts[name] = _write_jsonl(archive, name, (_row(model, row) for row in rows))
    return counts


def data_export_request(*, organization: Organization, user) -> DataExport:
    return DataExport.objects.create(organization=organization, requested_by=user)


def data_export_run(*, export_id: int, base_url: str) -> DataExport:
    """Build the export's zip, mark it downloadable for EXPORT_HOURS, email the owners."""
    export = DataExport.objects.select_related("organization").get(pk=export_id)
    directory = Path(settings.AISPENDTRACK_EXPORT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    file_name = f"{export.organization.slug}-{secrets.token_urlsafe(16)}.zip"
    try:
        organization_export_build(organization=export.organization, path=directory / file_name)
    except Exception:
        logger.exception("export %s of %s failed", export.pk, export.organization.slug)
        export.status = DataExport.Status.FAILED
        export.save(update_fields=["status"])
        raise
    export.file_name = file_name
    export.size_bytes = (directory / file_name).stat().st_size
    export.status = DataExport.Status.READY
    export.expires_at = timezone.now() + timedelta(hours=EXPORT_HOURS)
    export.save(update_fields=["file_name", "size_bytes", "status", "expires_at"])
    owners = list(
        Membership.objects.filter(organization=export.organization, role=Role.OWNER).values_list(
            "user__email", flat=True
        )
    )
    link = f"{base_url.rstrip('/')}/settings/organization/exports/{export.pk}/download/"
    send_mail(
        subject=f"Your AiSpendTrack data export of {export.organization.name} is ready",
        message=(
            f"The export of everything {export.organization.name} holds in AiSpendTrack is "
            f"ready. Owners can download it for {EXPORT_HOURS} hours (log in first):\n\n{link}\n"
        ),
        from_email=None,
        recipient_list=owners,
    )
    return export


def data_export_path(export: DataExport) -> Path | None:
    """The file of a ready, unexpired export, or None."""
    if export.status != DataExport.Status.READY or not export.file_name:
        return None
    if export.expires_at is None or export.expires_at <= timezone.now():
        return None
    path = Path(settings.AISPENDTRACK_EXPORT_DIR) / export.file_name
    return path if path.exists() else None


def data_exports_expire_all_orgs() -> int:
    """Remove export files past their 24 hours."""
    expired = DataExport.objects.filter(expires_at__lte=timezone.now())
    count = 0
    for export in expired:
        if export.file_name:
            (Path(settings.AISPENDTRACK_EXPORT_DIR) / export.file_name).unlink(missing_ok=True)
        export.delete()
        count += 1
    return count


# --- deleting an organization ---------------------------------------------------


@transaction.atomic
def organization_delete_request(
    *, organization: Organization, user, confirm_name: str
) -> OrganizationDeletion:
    """The owner deletes the organization: keys revoked and members removed now,
    the Stripe subscription cancelled, every row purged after DELETION_DAYS."""
    if confirm_name.strip() != organization.name:
        raise GdprError("Type the organization's name exactly to confirm.")
    for key in ApiKey.objects.filter(organization=organization, revoked_at__isnull=True):
        api_key_revoke(organization=organization, key=key)
    Invitation.objects.filter(organization=organization, accepted_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    Membership.objects.filter(organization=organization).delete()
    subscription_cancel_at_stripe(organization=organization)
    deletion, _ = OrganizationDeletion.objects.get_or_create(
        organization=organization,
        defaults={
            "requested_by_email": getattr(user, "email", ""),
            "purge_after": timezone.now() + timedelta(days=DELETION_DAYS),
        },
    )
    return deletion


def organization_purge(*, organization: Organization) -> None:
    """Hard-delete an organization and every row of it. Raw calls go first in
    batches (as the retention purge does), so no transaction holds millions."""
    while True:
        batch = UsageEvent.objects.filter(organization=organization).values("id")[:BATCH_SIZE]
        with transaction.atomic():
            count, _ = UsageEvent.objects.filter(id__in=batch).delete()
        if count < BATCH_SIZE:
            break
    for export in DataExport.objects.filter(organization=organization):
        if export.file_name:
            (Path(settings.AISPENDTRACK_EXPORT_DIR) / export.file_name).unlink(missing_ok=True)
    organizations_delete(ids=[organization.pk])  # everything else cascades


def organizations_purge_deleted_all_orgs(*, now: bool = False) -> list[str]:
    """Purge organizations deleted DELETION_DAYS ago (all of them with now=True)."""
    due = OrganizationDeletion.objects.select_related("organization")
    if not now:
        due = due.filter(purge_after__lte=timezone.now())
    purged = []
    for deletion in due:
        slug = deletion.organization.slug
        organization_purge(organization=deletion.organization)
        logger.info("organization %s purged", slug)
        purged.append(slug)
    return purged


# --- deleting an account ----------------------------------------------------------


def account_delete(*, user) -> list[str]:
    """Delete a user. Refused while they are the only owner of an organization
    with other members; organizations where they are the only member are
    deleted with them (purged after DELETION_DAYS). Returns those orgs' slugs."""
    memberships = Membership.objects.filter(user=user, role=Role.OWNER).select_related(
        "organization"
    )
    alone: list[Organization] = []
    for membership in memberships:
        organization = membership.organization
        others = Membership.objects.filter(organization=organization).exclude(user=user)
        if not others.exists():
            alone.append(organization)
        elif not others.filter(role=Role.OWNER).exists():
            raise GdprError(
                f"You are the only owner of {organization.name}, which has other members: "
                "make someone else an owner (Settings → Team) or delete the organization first."
            )
    with transaction.atomic():
        for organization in alone:
            organization_delete_request(
                organization=organization, user=user, confirm_name=organization.name
            )
        get_user_model().objects.filter(pk=user.pk).delete()
    return [organization.slug for organization in alone]
