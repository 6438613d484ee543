"""Celery tasks for analytics: re-keying the daily rollups after a zone change."""

from __future__ import annotations

from celery import shared_task

from analytics.daily import daily_rollups_rebuild, daily_rollups_rebuild_pending


@shared_task
def daily_rollups_rebuild_task(organization_id: int) -> int:
    return daily_rollups_rebuild(organization_id)


@shared_task
def daily_rollups_rebuild_pending_task() -> list[int]:
    """Beat's sweep: any organization whose zone changed without a rebuild
    (a lost task, a change made in SQL) is rebuilt within a minute."""
    return daily_rollups_rebuild_pending()
