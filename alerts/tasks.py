"""Celery tasks of budgets and alerts: ids in, a service call, nothing else."""

from __future__ import annotations

from celery import shared_task

from alerts.anomalies import anomalies_detect_all_orgs
from alerts.events import budgets_evaluate_all_orgs, deliveries_due_all_orgs, delivery_attempt


@shared_task
def budgets_evaluate_task() -> int:
    """Beat, every 30 s: thresholds crossed fire within a minute."""
    return budgets_evaluate_all_orgs()


@shared_task
def delivery_send_task(delivery_id: int) -> None:
    delay = delivery_attempt(delivery_id=delivery_id)
    if delay is not None:
        delivery_send_task.apply_async((delivery_id,), countdown=delay)


@shared_task
def deliveries_retry_due_task() -> int:
    """Beat, every minute: re-queue retries whose task was lost (a worker restart)."""
    due = deliveries_due_all_orgs()
    for delivery_id in due:
        delivery_send_task.delay(delivery_id)
    return len(due)


@shared_task
def anomalies_detect_task() -> int:
    return anomalies_detect_all_orgs()
