"""Celery tasks for analytics: re-keying the daily rollups after a zone change,
syncing revenue from Stripe."""

from __future__ import annotations

from celery import shared_task

from accounts.models import Organization
from analytics.daily import daily_rollups_rebuild, daily_rollups_rebuild_pending
from analytics.stripe_revenue import stripe_revenue_sync, stripe_revenue_sync_all


@shared_task
def daily_rollups_rebuild_task(organization_id: int) -> int:
    return daily_rollups_rebuild(organization_id)


@shared_task
def daily_rollups_rebuild_pending_task() -> list[int]:
    """Beat's sweep: any organization whose zone changed without a rebuild
    (a lost task, a change made in SQL) is rebuilt within a minute."""
    return daily_rollups_rebuild_pending()


@shared_task
def stripe_revenue_sync_task(organization_id: int) -> int:
    """Settings → Revenue's "Sync now": one organization's paid Stripe invoices."""
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return 0
    return stripe_revenue_sync(organization=organization).invoices


@shared_task
def stripe_revenue_sync_all_task() -> int:
    """Beat, daily: every organization with a connected Stripe key."""
    return stripe_revenue_sync_all()
