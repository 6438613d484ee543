"""Billing's periodic work (config/celery.py schedules it)."""

from __future__ import annotations

from celery import shared_task

from billing.gdpr import (
    data_export_run,
    data_exports_expire_all_orgs,
    organizations_purge_deleted_all_orgs,
)
from billing.retention import usage_purge_all_orgs
from billing.usage_emails import usage_emails_send_all_orgs


@shared_task
def usage_purge_task() -> int:
    """The daily retention purge: raw calls past each plan's retention."""
    return sum(result.deleted for result in usage_purge_all_orgs())


@shared_task
def organization_export_task(export_id: int, base_url: str) -> None:
    """Build a GDPR export's zip and email the owners its link."""
    data_export_run(export_id=export_id, base_url=base_url)


@shared_task
def organizations_purge_deleted_task() -> int:
    """Daily: purge organizations deleted 30 days ago; drop expired export files."""
    data_exports_expire_all_orgs()
    return len(organizations_purge_deleted_all_orgs())


@shared_task
def usage_emails_task() -> int:
    """Every 15 minutes: owners hear at 50/75/90 % of the monthly call limit."""
    return usage_emails_send_all_orgs()
