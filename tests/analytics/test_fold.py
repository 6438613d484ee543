"""The fold (analytics.fold): ingest writes events + HourlyRollup + deltas only;
the fold adds each delta to the derived tables exactly once, a crash between
its steps included; zone rebuilds go through it and stall nobody's ingest."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Sum

from accounts.models import Organization
from analytics import fold
from analytics.fold import daily_rollups_rebuild, rollups_fold_all_orgs, rollups_fold_until_done
from analytics.models import (
    CustomerRollup,
    DailyCoarseRollup,
    DailyModelRollup,
    HourlyCoarseRollup,
    HourlyRollup,
    RollupDelta,
    Span,
    UsageEvent,
)
from analytics.rollups import DAILY_MODEL, RollupTable
from analytics.services import usage_record_batch
from tests.analytics.conftest import call

ROOT = Path(__file__).resolve().parents[2]
DERIVED = (HourlyCoarseRollup, DailyCoarseRollup, DailyModelRollup, CustomerRollup)
POSTGRES = connection.vendor == "postgresql"


def totals(model, org) -> tuple:
    sums = model.objects.filter(organization=org).aggregate(c=Sum("calls"), cost=Sum("cost"))
    return sums["c"] or 0, Decimal(sums["cost"] or 0).quantize(Decimal("1e-10"))


def day_calls(org) -> dict[date, int]:
    rows = DailyCoarseRollup.objects.filter(organization=org).values("day")
    return {row["day"]: row["calls"] for row in rows.annotate(calls=Sum("calls"))}


@pytest.mark.django_db
def test_ingest_writes_events_hourly_and_deltas_only_and_the_fold_the_rest(org):
    usage_record_batch(
        [
            call(org, datetime(2026, 11, 2, 10, 5, tzinfo=UTC), customer_id="a"),
            call(org, datetime(2026, 11, 2, 10, 50, tzinfo=UTC), customer_id="b"),
        ]
    )
    assert HourlyRollup.objects.filter(organization=org).count() == 2
    assert RollupDelta.objects.filter(organization=org).count() == 2
    assert all(not model.objects.exists() for model in DERIVED)

    assert rollups_fold_until_done() == 2
    assert not RollupDelta.objects.exists()
    # 2 calls of 0.01 each, in every derived table (CustomerRollup: day, week
    # and month × totals, model, feature and status = 12 rows per customer).
    for model in (HourlyCoarseRollup, DailyCoarseRollup, DailyModelRollup):
        assert totals(model, org) == (2, Decimal("0.0200000000"))
    assert totals(CustomerRollup, org) == (24, Decimal("0.2400000000"))
    assert rollups_fold_until_done() == 0  # nothing counted twice


@pytest.mark.django_db
def test_a_crash_between_fold_steps_neither_double_counts_nor_skips(org, other_org, monkeypatch):
    at = datetime(2026, 11, 2, 10, 5, tzinfo=UTC)
    usage_record_batch([call(org, at), call(org, at), call(other_org, at)])
    real_add, real_sql = RollupTable.add, RollupTable.derive_sql

    def crash_at_daily_model_add(self, rows):
        if self is DAILY_MODEL:
            raise RuntimeError("killed between steps")
        return real_add(self, rows)

    def crash_at_daily_model_sql(self, source, **options):
        if self is DAILY_MODEL:
            raise RuntimeError("killed between steps")
        return real_sql(self, source, **options)

    monkeypatch.setattr(RollupTable, "add", crash_at_daily_model_add)
    monkeypatch.setattr(RollupTable, "derive_sql", crash_at_daily_model_sql)
    with pytest.raises(RuntimeError, match="killed between steps"):
        rollups_fold_all_orgs()
    # The coarse tables were written before the crash: rolled back with it.
    # (One delta per hourly bucket and batch: org's two calls share a bucket.)
    assert RollupDelta.objects.count() == 2
    assert all(not model.objects.exists() for model in DERIVED)

    monkeypatch.setattr(RollupTable, "add", real_add)
    monkeypatch.setattr(RollupTable, "derive_sql", real_sql)
    assert rollups_fold_until_done() == 2
    assert totals(HourlyCoarseRollup, org) == (2, Decimal("0.0200000000"))
    assert totals(DailyModelRollup, org) == (2, Decimal("0.0200000000"))
    assert totals(DailyCoarseRollup, other_org) == (1, Decimal("0.0100000000"))
    # Again, with a second batch landing between the crash and the retry.
    usage_record_batch([call(org, at)])
    assert rollups_fold_until_done() == 1
    assert totals(DailyCoarseRollup, org) == (3, Decimal("0.0300000000"))


@pytest.mark.django_db
def test_deleting_an_organization_with_unfolded_deltas_does_not_break_the_fold(org, other_org):
    at = datetime(2026, 11, 2, 10, 5, tzinfo=UTC)
    usage_record_batch([call(org, at), call(other_org, at)])
    Organization.objects.filter(pk=org.pk).delete()
    assert rollups_fold_until_done() == 1
    assert totals(DailyCoarseRollup, other_org) == (1, Decimal("0.0100000000"))
    assert not RollupDelta.objects.exists()


@pytest.mark.django_db
def test_hand_written_days_weeks_and_months_across_dst_in_paris(org, ingest):
    """Europe/Paris leaves summer time on Sunday 2026-10-25 at 01:00 UTC;
    ISO weeks start on Mondays (Oct 19, Oct 26); November starts on a Sunday.
    The expected tables are worked out by hand from the UTC instants."""
    org.timezone = "Europe/Paris"
    org.save()
    daily_rollups_rebuild(org.pk)
    ingest(
        *(
            call(org, datetime.fromisoformat(at).replace(tzinfo=UTC), customer_id="c1")
            for at in (
                "2026-10-24T21:59",  # 23:59 CEST, Sat 24
                "2026-10-24T22:30",  # 00:30 CEST, Sun 25
                "2026-10-25T00:30",  # 02:30 CEST, Sun 25
                "2026-10-25T01:30",  # 02:30 CET (the hour again), Sun 25
                "2026-10-25T22:59",  # 23:59 CET, Sun 25
                "2026-10-25T23:30",  # 00:30 CET, Mon 26 (new week)
                "2026-10-31T22:59",  # 23:59 CET, Sat 31
                "2026-10-31T23:15",  # 00:15 CET, Sun Nov 1 (new month)
            )
        )
    )
    assert day_calls(org) == {
        date(2026, 10, 24): 1,
        date(2026, 10, 25): 4,
        date(2026, 10, 26): 1,
        date(2026, 10, 31): 1,
        date(2026, 11, 1): 1,
    }
    assert customer_spans(org) == {
        (Span.DAY, date(2026, 10, 24)): 1,
        (Span.DAY, date(2026, 10, 25)): 4,
        (Span.DAY, date(2026, 10, 26)): 1,
        (Span.DAY, date(2026, 10, 31)): 1,
        (Span.DAY, date(2026, 11, 1)): 1,
        (Span.WEEK, date(2026, 10, 19)): 5,
        (Span.WEEK, date(2026, 10, 26)): 3,
        (Span.MONTH, date(2026, 10, 1)): 7,
        (Span.MONTH, date(2026, 11, 1)): 1,
    }


@pytest.mark.django_db
def test_hand_written_days_and_weeks_across_dst_in_new_york(org, ingest):
    """America/New_York enters summer time on Sunday 2026-03-08 at 07:00 UTC
    (a 23-hour day); the Monday after starts a new ISO week."""
    org.timezone = "America/New_York"
    org.save()
    daily_rollups_rebuild(org.pk)
    ingest(
        *(
            call(org, datetime.fromisoformat(at).replace(tzinfo=UTC), customer_id="c1")
            for at in (
                "2026-03-08T04:30",  # 23:30 EST, Sat 7
                "2026-03-08T05:10",  # 00:10 EST, Sun 8
                "2026-03-08T07:30",  # 03:30 EDT, Sun 8
                "2026-03-09T03:59",  # 23:59 EDT, Sun 8
                "2026-03-09T04:00",  # 00:00 EDT, Mon 9
            )
        )
    )
    assert day_calls(org) == {date(2026, 3, 7): 1, date(2026, 3, 8): 3, date(2026, 3, 9): 1}
    assert customer_spans(org) == {
        (Span.DAY, date(2026, 3, 7)): 1,
        (Span.DAY, date(2026, 3, 8)): 3,
        (Span.DAY, date(2026, 3, 9)): 1,
        (Span.WEEK, date(2026, 3, 2)): 4,
        (Span.WEEK, date(2026, 3, 9)): 1,
        (Span.MONTH, date(2026, 3, 1)): 5,
    }


def customer_spans(org) -> dict[tuple[str, date], int]:
    rows = CustomerRollup.objects.filter(organization=org, dimension="", customer_id="c1")
    return {(row.span, row.start): row.calls for row in rows}


@pytest.mark.skipif(not POSTGRES, reason="row locks and advisory locks are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_batches_land_within_2_s_while_a_zone_rebuild_runs(org, other_org, monkeypatch):
    at = datetime(2026, 11, 2, 23, 30, tzinfo=UTC)
    usage_record_batch([call(org, at, customer_id="a")])
    rollups_fold_until_done()
    Organization.objects.filter(pk=org.pk).update(timezone="Asia/Tokyo")
    inside, release = threading.Event(), threading.Event()
    real = fold._rebuild_sql

    def slow_rebuild(organization_id, zone):
        inside.set()
        release.wait(30)  # a rebuild of a big organization: minutes
        return real(organization_id, zone)

    monkeypatch.setattr(fold, "_rebuild_sql", slow_rebuild)
    errors: list[BaseException] = []

    def rebuild() -> None:
        try:
            daily_rollups_rebuild(org.pk)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    worker = threading.Thread(target=rebuild)
    worker.start()
    try:
        assert inside.wait(10), "the rebuild never started"
        started = time.monotonic()
        # A mixed batch: another organization's call and one of the organization rebuilt.
        written = usage_record_batch(
            [call(other_org, at, customer_id="x"), call(org, at, customer_id="b")]
        )
        took = time.monotonic() - started
        assert rollups_fold_all_orgs() == 1  # the other organization folds; org waits
    finally:
        release.set()
        worker.join(30)
    assert not errors, errors
    assert written == 2 and took < 2, f"batch took {took:.2f} s"
    rollups_fold_until_done()
    # 23:30 UTC is Nov 3 in Tokyo: both calls there, each counted once.
    assert day_calls(Organization.objects.get(pk=org.pk)) == {date(2026, 11, 3): 2}
    assert UsageEvent.objects.filter(organization=org).count() == 2


@pytest.mark.skipif(not POSTGRES, reason="the fold process shares the test's PostgreSQL database")
@pytest.mark.django_db(transaction=True)
def test_the_fold_loop_keeps_dashboards_fresh_within_10_s(org):
    """`manage.py rollups_fold --loop` as make serve starts it: a call's
    sums reach the daily tables without anything else running."""
    settings = connection.settings_dict
    url = (
        f"postgres://{settings['USER']}:{settings['PASSWORD'] or ''}@{settings['HOST']}:"
        f"{settings['PORT'] or 5432}/{settings['NAME']}"
    )
    environment = {**os.environ, "DATABASE_URL": url, "DEBUG": "1"}
    loop = subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", "rollups_fold", "--loop", "--interval", "0.5"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # Started (Django set up, the loop running) before the clock starts.
        assert loop.stdout is not None
        for line in loop.stdout:
            if b"rollups fold running" in line:
                break
        usage_record_batch([call(org, datetime.now(UTC), customer_id="a")])
        recorded = time.monotonic()
        while not DailyCoarseRollup.objects.filter(organization=org).exists():
            assert loop.poll() is None, loop.stdout.read().decode() if loop.stdout else ""
            assert time.monotonic() - recorded < 10, "not folded within 10 s"
            time.sleep(0.05)
    finally:
        loop.terminate()
        loop.wait(15)
    assert totals(CustomerRollup, org) == (12, Decimal("0.1200000000"))
