"""The Celery app: `celery -A config worker -B`.

Broker: Redis when REDIS_URL is set, otherwise kombu's filesystem transport
under var/ (settings.py), so `make run` needs no server.
"""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("aispendtrack")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic work; each app adds its entries here as it grows.
app.conf.beat_schedule = {
    "invitations-purge": {
        "task": "accounts.tasks.invitations_purge_task",
        "schedule": 24 * 60 * 60,
    },
    "rollups-fold": {
        "task": "analytics.tasks.rollups_fold_task",
        "schedule": 5,
    },
    "daily-rollups-rebuild-pending": {
        "task": "analytics.tasks.daily_rollups_rebuild_pending_task",
        "schedule": 60,
    },
    "billing-deleted-orgs-purge-daily": {
        "task": "billing.tasks.organizations_purge_deleted_task",
        "schedule": crontab(hour=4, minute=37),
    },
    "billing-usage-emails": {
        "task": "billing.tasks.usage_emails_task",
        "schedule": 15 * 60,
    },
    "billing-usage-purge-daily": {
        "task": "billing.tasks.usage_purge_task",
        "schedule": crontab(hour=4, minute=7),
    },
    "revenue-stripe-sync-daily": {
        "task": "analytics.tasks.stripe_revenue_sync_all_task",
        "schedule": crontab(hour=5, minute=23),
    },
    # Budgets and alerts (issue 14).
    "budgets-evaluate": {"task": "alerts.tasks.budgets_evaluate_task", "schedule": 30},
    "alert-deliveries-retry": {"task": "alerts.tasks.deliveries_retry_due_task", "schedule": 60},
    "anomalies-detect": {"task": "alerts.tasks.anomalies_detect_task", "schedule": 600},
    "pricing-sync-daily": {
        "task": "pricing.tasks.prices_sync_task",
        "schedule": crontab(hour=3, minute=17),
    },
}
