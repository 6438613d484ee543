"""Celery tasks for pricing: the daily price sync (beat) and re-pricing."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from analytics.repricing import usage_reprice
from pricing.services import prices_sync

logger = logging.getLogger(__name__)


@shared_task
def prices_sync_task() -> str:
    """Sync from genai-prices (online first when AISPENDTRACK_PRICES_ONLINE_UPDATE
    allows; the online path is best-effort and falls back to the bundled data),
    then re-price calls that had no price, since new models may now have one."""
    report = prices_sync(online=settings.AISPENDTRACK_PRICES_ONLINE_UPDATE)
    logger.info("%s", report.summary())
    if report.touched:
        repriced = usage_reprice()
        logger.info("re-priced %d previously unpriced events", repriced)
    return report.summary()
