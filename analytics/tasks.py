"""Celery tasks for analytics: the fold (beat, every few seconds), re-keying
the daily rollups after a zone change, re-pricing (and the background runs a
saved price starts), syncing revenue from Stripe.

`manage.py rollups_fold --loop` (started by `make run` and `make serve`) does
the fold's work without Celery; several folders at once are safe (analytics.fold).
"""

from __future__ import annotations

from functools import partial

from celery import shared_task
from django.db import transaction

from accounts.models import Organization
from analytics.fold import daily_rollups_rebuild_pending, rollups_fold_until_done
from analytics.models import RepriceRun
from analytics.repricing import (
    parse_since,
    reprice_run_execute,
    reprice_runs_create,
    usage_reprice,
)
from analytics.stripe_revenue import stripe_revenue_sync, stripe_revenue_sync_all


@shared_task
def rollups_fold_task() -> int:
    return rollups_fold_until_done()


@shared_task
def daily_rollups_rebuild_pending_task() -> list[int]:
    """Re-key the daily tables of organizations whose zone changed."""
    return daily_rollups_rebuild_pending()


@shared_task
def usage_reprice_task(
    *,
    model: str | None = None,
    since: str | None = None,
    organization_id: int | None = None,
    include_priced: bool = False,
) -> int:
    """`usage_reprice` by ids and ISO strings (task arguments stay JSON)."""
    return usage_reprice(
        model=model,
        since=parse_since(since) if since else None,
        organization=organization_id,
        include_priced=include_priced,
    )


@shared_task
def reprice_run_task(run_id: int) -> int:
    """One RepriceRun: the calls a just-saved price can now price."""
    return reprice_run_execute(run_id=run_id)


def reprice_runs_start(*, label: str, organization=None) -> list[RepriceRun]:
    """After a price or an override is saved: queue a run per organization
    whose unpriced calls it can now price (`organization` None: any, for a
    list price), each handed to a worker once the save commits."""
    runs = reprice_runs_create(label=label, organization=organization)
    for run in runs:
        transaction.on_commit(partial(reprice_run_task.delay, run.pk))
    return runs


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
