"""Ledger ingest rate and fold lag (`python -m bench proxy_ingest`, PostgreSQL).

`usage_record_batch` on realistic batches (50 customers × 3 model/feature
pairs, 2 hours), in this process, against the database of DATABASE_URL.
Alternating rounds, medians:
- EVENTS_ONLY, the same-run baseline: the same events COPY'd alone, one
  transaction a batch, no rollups, no delta log;
- INGEST: the ledger's write (events + HourlyRollup + delta log), as events/s
  and as CPU µs per event (this process + its PostgreSQL backend, read from
  /proc when the server is local: a figure a busy machine barely moves);
- FOLD: how fast the fold turns those deltas into the derived tables;
- FOLD_LAG: `manage.py rollups_fold --loop` beside a sustained ingest (as
  `make serve` runs it): every second a marker notes the newest delta, and
  its lag is the time until the fold has consumed it; the largest lag.
`python -m bench.proxy_ingest` prints the figures (bench.proxy reads INGEST).
BENCH_INGEST_BATCH sets the batch size (default 500). BENCH_INGEST_PROPERTIES=1
gives every call two x-property-* (plan: 3 values, region: 4) and adds the
same-run "before" of the property rollups: INGEST_NO_PROPERTY_ROLLUPS, the
ledger's write with the property delta log left out.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from unittest import mock

from bench import Result
from bench.foldlag import FoldLagWatch

EVENTS = 20_000
BATCH = int(os.environ.get("BENCH_INGEST_BATCH", "500"))
ROUNDS = 3
SUSTAINED_ROUNDS = 4  # rounds of EVENTS ingested back to back beside the fold loop
TARGET_PER_S = 10_000
PROPERTIES = os.environ.get("BENCH_INGEST_PROPERTIES") == "1"
ROOT = Path(__file__).resolve().parents[1]


def run() -> list[Result]:
    from django.db import connection

    if connection.vendor != "postgresql":
        return [Result("ledger ingest: skipped (needs PostgreSQL: set DATABASE_URL)", 0.0)]
    figures, _ = measure()
    return [
        Result(
            "ledger ingest: µs per event (baseline: events alone)",
            1e6 / figures["ingest"],
            baseline_us=1e6 / figures["events_only"],
            limit_us=1e6 / TARGET_PER_S,
            note=(
                f"{figures['ingest']:,.0f} events/s vs {figures['events_only']:,.0f} COPY alone; "
                f"CPU {figures['ingest_cpu']:.0f} µs/event vs {figures['events_only_cpu']:.0f}"
            ),
        ),
        Result(
            "fold: µs per event folded (baseline: ingest)",
            1e6 / figures["fold"],
            baseline_us=1e6 / figures["ingest"],
            note=f"fold lag under sustained ingest: max {figures['fold_lag']:.2f} s",
        ),
    ]


def measure() -> tuple[dict[str, float], dict[str, list[tuple[float, float]]]]:
    """The medians, and each round's (events/s, CPU µs per event)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.db import connection, transaction

    from accounts.models import Organization
    from analytics.fold import rollups_fold_until_done
    from analytics.models import DailyCoarseRollup, UsageEvent
    from analytics.services import event_row, events_copy, usage_record_batch

    org, _ = Organization.objects.get_or_create(slug="bench-ingest", defaults={"name": "Ingest"})
    backend = _backend_cpu_reader(connection)

    def events_only(batch) -> None:
        with transaction.atomic():
            events_copy([event_row(r) for r in batch])

    def ingest_no_property_rollups(batch) -> None:
        with mock.patch("analytics.services.property_buckets", return_value={}):
            usage_record_batch(batch)

    writers: list[tuple[str, Callable]] = [("events_only", events_only)]
    if PROPERTIES:
        writers.append(("ingest_no_property_rollups", ingest_no_property_rollups))
    writers.append(("ingest", usage_record_batch))  # last: the fold below folds its deltas
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in writers}
    fold = []
    for _ in range(ROUNDS):
        for name, write in writers:
            _clean(org)
            rates[name].append(_timed(_records(org.pk), write, backend))
        assert UsageEvent.objects.filter(organization=org).count() == EVENTS  # noqa: S101
        began = time.perf_counter()
        rollups_fold_until_done()
        fold.append(EVENTS / (time.perf_counter() - began))
        assert DailyCoarseRollup.objects.filter(organization=org).exists()  # noqa: S101
    _clean(org)
    lag = _fold_lag(org)
    _clean(org)
    figures = {
        "ingest": statistics.median(rate for rate, _ in rates["ingest"]),
        "ingest_cpu": statistics.median(cpu for _, cpu in rates["ingest"]),
        "events_only": statistics.median(rate for rate, _ in rates["events_only"]),
        "events_only_cpu": statistics.median(cpu for _, cpu in rates["events_only"]),
        "fold": statistics.median(fold),
        "fold_lag": lag,
    }
    if PROPERTIES:
        before = rates["ingest_no_property_rollups"]
        figures["ingest_no_property_rollups"] = statistics.median(rate for rate, _ in before)
        figures["ingest_no_property_rollups_cpu"] = statistics.median(cpu for _, cpu in before)
    return figures, rates


def _timed(records: list, write: Callable, backend: Callable[[], float]) -> tuple[float, float]:
    """(events/s, CPU µs per event of this process and its database backend)."""
    wall, cpu, server = time.perf_counter(), time.process_time(), backend()
    for first in range(0, len(records), BATCH):
        write(records[first : first + BATCH])
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu + backend() - server
    return len(records) / wall, cpu / len(records) * 1e6


def _backend_cpu_reader(connection) -> Callable[[], float]:
    """Seconds of CPU the connection's PostgreSQL backend has used (0 when
    the server is not on this machine)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        stat = Path(f"/proc/{cursor.fetchone()[0]}/stat")
    tick = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / tick

    return read


def _fold_lag(org) -> float:
    """The largest time from a delta's commit to its fold, with the fold loop
    running beside SUSTAINED_ROUNDS × EVENTS events ingested back to back."""
    from django.db import connections

    from analytics.models import RollupDelta
    from analytics.services import usage_record_batch

    loop = subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", "rollups_fold", "--loop"], cwd=ROOT, env=os.environ
    )
    done = threading.Event()
    patience = 120.0  # after the last batch, for the fold to catch up
    deadline = float("inf")

    def pending() -> tuple[int | None, int | None]:
        deltas = RollupDelta.objects.filter(organization=org).order_by("pk")
        oldest = deltas.values_list("pk", flat=True).first()
        return oldest, deltas.values_list("pk", flat=True).last()

    lag = FoldLagWatch(pending)

    def watch() -> None:
        try:
            while True:
                settled = lag.sample()
                if done.is_set() and (settled or time.perf_counter() > deadline):
                    lag.give_up()
                    return
                time.sleep(1 if not done.is_set() else 0.05)
        finally:
            connections.close_all()

    try:
        time.sleep(3)  # the loop started and idle
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        for _ in range(SUSTAINED_ROUNDS):
            records = _records(org.pk)
            for first in range(0, EVENTS, BATCH):
                usage_record_batch(records[first : first + BATCH])
        deadline = time.perf_counter() + patience
        done.set()
        watcher.join(patience + 5)
    finally:
        done.set()
        loop.terminate()
        loop.wait(30)
    return lag.worst()


def _clean(org) -> None:
    """The organization's ledger and every table derived from it: each
    analytics table with an organization key (billing.gdpr's list, so a new
    rollup is cleaned without being named here)."""
    from billing.gdpr import tenant_models

    for model in tenant_models():
        if model._meta.app_label == "analytics":
            model._default_manager.filter(organization=org).delete()


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
            properties=(
                {"plan": ("free", "pro", "team")[n % 3], "region": f"r{n % 4}"}
                if PROPERTIES
                else {}
            ),
        )
        for n in range(EVENTS)
    ]


def main() -> None:
    figures, rounds = measure()
    print(f"INGEST {figures['ingest']:.1f}")
    print(f"INGEST_CPU_US {figures['ingest_cpu']:.1f}")
    print(f"EVENTS_ONLY {figures['events_only']:.1f}")
    print(f"EVENTS_ONLY_CPU_US {figures['events_only_cpu']:.1f}")
    print(f"RATIO {figures['ingest'] / figures['events_only']:.2f}")
    if PROPERTIES:
        print(f"INGEST_NO_PROPERTY_ROLLUPS {figures['ingest_no_property_rollups']:.1f}")
        print(f"INGEST_NO_PROPERTY_ROLLUPS_CPU_US {figures['ingest_no_property_rollups_cpu']:.1f}")
    print(f"FOLD {figures['fold']:.1f}")
    print(f"FOLD_LAG {figures['fold_lag']:.2f}")
    print(
        "rounds (events/s, CPU µs/event): "
        + "; ".join(
            f"{name} {[(round(r), round(c, 1)) for r, c in values]}"
            for name, values in rounds.items()
        )
    )


if __name__ == "__main__":
    main()
