"""Ledger ingest rate: `usage_record_batch` on realistic batches, in its own process
(the database of DATABASE_URL, the benchmark's PostgreSQL). Prints `INGEST <events/s>`
(events + HourlyRollup + delta log, the median of ROUNDS), `FOLD <events/s>` (how
fast the fold turns those deltas into the derived tables, serially, same run),
and `FOLD_LAG <s>` (with `manage.py rollups_fold --loop` running beside the
ingest, as `make serve` runs it: how long after the last batch the derived tables
have caught up). `python -m bench.proxy_ingest` runs it alone.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

EVENTS = 20_000
BATCH = 500
ROUNDS = 3
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.db import transaction

    from accounts.models import Organization
    from analytics.fold import rollups_fold_until_done
    from analytics.models import (
        CustomerRollup,
        DailyCoarseRollup,
        DailyModelRollup,
        HourlyCoarseRollup,
        HourlyRollup,
        RollupDelta,
        UsageEvent,
    )
    from analytics.services import _events_copy, event_row, usage_record_batch

    tables = (
        UsageEvent,
        HourlyRollup,
        RollupDelta,
        HourlyCoarseRollup,
        DailyCoarseRollup,
        DailyModelRollup,
        CustomerRollup,
    )
    org, _ = Organization.objects.get_or_create(slug="bench-ingest", defaults={"name": "Ingest"})

    def clean() -> None:
        for model in tables:
            model.objects.filter(organization=org).delete()

    ingest, fold, floor = [], [], []
    for _ in range(ROUNDS):
        # Same-run baseline: the events alone (COPY in one transaction a batch),
        # no rollups, no delta log: what the machine can do right now.
        clean()
        records = _records(org.pk)
        began = time.perf_counter()
        for first in range(0, EVENTS, BATCH):
            with transaction.atomic():
                _events_copy([event_row(r) for r in records[first : first + BATCH]])
        floor.append(EVENTS / (time.perf_counter() - began))
        clean()
        records = _records(org.pk)
        began = time.perf_counter()
        for first in range(0, EVENTS, BATCH):
            usage_record_batch(records[first : first + BATCH])
        ingest.append(EVENTS / (time.perf_counter() - began))
        assert UsageEvent.objects.filter(organization=org).count() == EVENTS
        began = time.perf_counter()
        rollups_fold_until_done()
        fold.append(EVENTS / (time.perf_counter() - began))
        assert DailyCoarseRollup.objects.filter(organization=org).exists()

    # The fold loop beside the ingest, as make serve runs it.
    clean()
    records = _records(org.pk)
    loop = subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", "rollups_fold", "--loop"], cwd=ROOT, env=os.environ
    )
    try:
        time.sleep(3)  # started and idle
        for first in range(0, EVENTS, BATCH):
            usage_record_batch(records[first : first + BATCH])
        done = time.perf_counter()
        while RollupDelta.objects.filter(organization=org).exists():
            time.sleep(0.05)
        lag = time.perf_counter() - done
    finally:
        loop.terminate()
        loop.wait(30)
    clean()
    print(f"INGEST {statistics.median(ingest):.1f}")
    print(f"EVENTS_ONLY {statistics.median(floor):.1f}")
    print(f"FOLD {statistics.median(fold):.1f}")
    print(f"FOLD_LAG {lag:.2f}")
    print(
        f"rounds: ingest {[round(x) for x in ingest]}, fold {[round(x) for x in fold]}, "
        f"events only {[round(x) for x in floor]}"
    )


def _records(org_id: int) -> list:
    from analytics.records import UsageRecord
    from pricing.usage import Usage

    start = datetime.now(UTC) - timedelta(hours=2)
    stamp = time.time_ns()
    return [
        UsageRecord(
            request_id=f"req_{stamp:x}{n:08x}"[:40],
            organization_id=org_id,
            api_key_id=None,
            created_at=start + timedelta(milliseconds=n * 300),
            provider="openai",
            endpoint="/v1/chat/completions",
            status="success",
            model=("gpt-4o", "gpt-4o-mini", "o3")[n % 3],
            customer_id=f"cust-{n % 50}",
            feature=("chat", "search", "summary")[n % 3],
            environment="prod",
            usage=Usage(input_tokens=1000 + n % 97, output_tokens=200 + n % 31),
            cost=Decimal("0.0012345678"),
            latency_ms=400,
        )
        for n in range(EVENTS)
    ]


if __name__ == "__main__":
    main()
