"""A real Celery worker (in a thread) takes a task from the configured broker:
Redis in CI, kombu's filesystem transport on a laptop."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from accounts.models import Invitation
from accounts.tasks import invitations_purge_task
from config.celery import app


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_runs_the_invitation_purge(org):
    long_ago = timezone.now() - timedelta(days=60)
    stale = Invitation.objects.create(
        organization=org, email="old@acme.test", token_hash="a" * 64, expires_at=long_ago
    )
    fresh = Invitation.objects.create(
        organization=org,
        email="new@acme.test",
        token_hash="b" * 64,
        expires_at=timezone.now() + timedelta(days=7),
    )

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        invitations_purge_task.delay()
        deadline = time.monotonic() + 20
        while Invitation.objects.filter(pk=stale.pk).exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    assert not Invitation.objects.filter(pk=stale.pk).exists()
    assert Invitation.objects.filter(pk=fresh.pk).exists()


def test_beat_schedule_names_real_tasks():
    app.loader.import_default_modules()
    for entry in app.conf.beat_schedule.values():
        assert entry["task"] in app.tasks, entry["task"]
