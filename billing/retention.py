"""Retention purge: raw UsageEvent rows past each plan's retention are deleted;
every rollup stays, so summaries, daily series and breakdowns of purged days
do not change ("aggregate data remains").

Deletes go in batches of at most BATCH_SIZE rows, each its own transaction,
so the ledger writer never waits long behind a purge. The daily beat task and
`manage.py purge_usage` run this same code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import Organization
from analytics.models import UsageEvent
from billing.selectors import plan_effective

logger = logging.getLogger("aispendtrack.billing")

BATCH_SIZE = 10_000


@dataclass(frozen=True)
class PurgeResult:
    organization: Organization
    retention_days: int
    cutoff: datetime
    deleted: int  # with dry_run: how many would be


def usage_purge(
    *,
    organization: Organization,
    dry_run: bool = False,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int, float], None] | None = None,
) -> PurgeResult | None:
    """Delete `organization`'s raw calls older than its plan's retention (None:
    it keeps them forever). Rollups are never touched."""
    retention_days = plan_effective(organization=organization, now=now).retention_days
    if retention_days is None:
        return None
    cutoff = (now or timezone.now()) - timedelta(days=retention_days)
    expired = UsageEvent.objects.filter(organization=organization, created_at__lt=cutoff)
    if dry_run:
        return PurgeResult(organization, retention_days, cutoff, expired.count())
    deleted = 0
    while True:
        # One DELETE … WHERE id IN (SELECT id … LIMIT n) a batch, on (organization, created_at).
        batch = expired.order_by("created_at").values("id")[:batch_size]
        started = time.perf_counter()
        with transaction.atomic():
            count, _ = UsageEvent.objects.filter(id__in=batch).delete()
        if on_batch is not None:  # the benchmark times each transaction
            on_batch(count, time.perf_counter() - started)
        deleted += count
        if count < batch_size:
            break
    if deleted:
        logger.info(
            "retention: deleted %d raw calls of %s before %s", deleted, organization.slug, cutoff
        )
    return PurgeResult(organization, retention_days, cutoff, deleted)


def usage_purge_all_orgs(
    *, dry_run: bool = False, slug: str | None = None, now: datetime | None = None
) -> list[PurgeResult]:
    """`usage_purge` for every organization (or the one with `slug`)."""
    organizations = Organization.objects.order_by("pk")
    if slug is not None:
        organizations = organizations.filter(slug=slug)
    results = []
    for organization in organizations.iterator():
        result = usage_purge(organization=organization, dry_run=dry_run, now=now)
        if result is not None:
            results.append(result)
    return results
