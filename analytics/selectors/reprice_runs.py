"""The re-pricing banner: what the background runs started by a saved price
are doing (analytics.repricing), per organization, from the database so that
it survives a reload and shows in every tab."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from analytics.models import RepriceRun, RepriceStatus

# A finished run is reported this long; a queued one that no worker took in a
# day is given up on (the Re-price button in Settings → Pricing still works).
SHOW_DONE_FOR = timedelta(minutes=15)
QUEUED_AT_MOST = timedelta(days=1)
ACTIVE = (RepriceStatus.QUEUED, RepriceStatus.RUNNING)


def reprice_runs_shown(*, organization, now: datetime | None = None) -> list[RepriceRun]:
    """The organization's runs in progress or finished lately, newest first."""
    now = now or timezone.now()
    return list(
        RepriceRun.objects.filter(organization=organization)
        .filter(
            Q(status__in=ACTIVE, created_at__gte=now - QUEUED_AT_MOST)
            | Q(finished_at__gte=now - SHOW_DONE_FOR)
        )
        .order_by("-id")[:5]
    )


def reprice_runs_marker(*, organization) -> str:
    """A token that changes when a run starts or finishes (the live pages'
    marker carries it, so the banner turns from "re-pricing…" to "done")."""
    row = RepriceRun.objects.filter(organization=organization).aggregate(
        newest=Max("id"), settled=Count("id", filter=~Q(status__in=ACTIVE))
    )
    return "" if row["newest"] is None else f"r{row['newest']}.{row['settled']}"
