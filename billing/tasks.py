"""Billing's periodic work (config/celery.py schedules it)."""

from __future__ import annotations

from celery import shared_task

from billing.retention import usage_purge_all_orgs


@shared_task
def usage_purge_task() -> int:
    """The daily retention purge: raw calls past each plan's retention."""
    return sum(result.deleted for result in usage_purge_all_orgs())
