"""The ledger write's PostgreSQL CPU per event, by schema variant
(`python -m bench.writer_backend`, PostgreSQL on this machine).

`usage_record_batch` writes realistic batches (BATCH records: 3 organizations,
a key each, 50 customers) in this process; the CPU of this process and of its
PostgreSQL backend is read from /proc per event. The variants alternate in
one run (ROUNDS rounds, medians), each set up by DDL on the event table
before its round, so they see the same table, cache and box:
- `fk`: UsageEvent's two foreign keys as database constraints (deferred, a
  check per event and key at commit), no batch check (main before 0027);
- `batch check`: no constraints, `owners_hold` once a batch (0027);
- `batch check, no key index`: also without api_key_id's index (not landed:
  a key's deletion unsets its events by it);
- `batch check, time-ordered ids`: the proxy's request ids, which start with
  the second (proxy.calls.new_request_id), so the unique index on them is
  written near its end; the other variants use ids of 96 random bits alone,
  the proxy's before.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from unittest import mock

from bench.proxy_ingest import _backend_cpu_reader
from bench.proxy_ingest import _records as _ingest_records

EVENTS = int(os.environ.get("BENCH_WRITER_EVENTS", "20000"))  # at most proxy_ingest's
BATCH = int(os.environ.get("BENCH_WRITER_BATCH", "1000"))
ROUNDS = int(os.environ.get("BENCH_WRITER_ROUNDS", "5"))
# Rounds a variant writes (and drops) before its measured one: what the
# previous variant left dirty in shared_buffers is written out by whoever
# needs a buffer next, so at a table past shared_buffers a variant pays for
# the one before it.
WARM = int(os.environ.get("BENCH_WRITER_WARM", "0"))
TABLE = "analytics_usageevent"
FOREIGN_KEYS = (
    ("ue_bench_org_fk", "organization_id", "accounts_organization"),
    ("ue_bench_key_fk", "api_key_id", "accounts_apikey"),
)
KEY_INDEX = "ue_bench_api_key"


def _constraints(cursor, *, on: bool) -> None:
    cursor.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
        [TABLE],
    )
    for (name,) in cursor.fetchall():
        cursor.execute(f'ALTER TABLE {TABLE} DROP CONSTRAINT "{name}"')
    if on:
        for name, column, target in FOREIGN_KEYS:
            cursor.execute(
                f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
                f"REFERENCES {target} (id) DEFERRABLE INITIALLY DEFERRED NOT VALID"
            )


def _key_indexes(cursor, *, on: bool) -> None:
    cursor.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
        "WHERE i.indrelid = %s::regclass AND i.indnatts = 1 AND a.attname = 'api_key_id'",
        [TABLE],
    )
    names = [name for (name,) in cursor.fetchall()]
    if on and not names:
        cursor.execute(f"CREATE INDEX {KEY_INDEX} ON {TABLE} (api_key_id)")
    if not on:
        for name in names:
            cursor.execute(f'DROP INDEX "{name}"')


# name: (constraints, batch check, key index, request ids)
VARIANTS: dict[str, tuple[bool, bool, bool, str]] = {
    "fk": (True, False, True, "random"),
    "batch check": (False, True, True, "random"),
    "batch check, no key index": (False, True, False, "random"),
    "batch check, time-ordered ids": (False, True, True, "ordered"),
}


def _request_id(ids: str) -> str:
    """The proxy's request id (time-ordered), or 96 random bits alone (the
    proxy's ids until they started with the second)."""
    from proxy.calls import new_request_id  # after django.setup()

    return new_request_id() if ids == "ordered" else "req_" + os.urandom(12).hex()


def _records(orgs: list[tuple[int, int]], ids: str) -> list:
    """bench.proxy_ingest's records, spread over the organizations, each with its key."""
    return [
        dataclasses.replace(
            record,
            request_id=_request_id(ids),
            organization_id=orgs[n % len(orgs)][0],
            api_key_id=orgs[n % len(orgs)][1],
            trace_id=f"trace-{n // 4}",
            http_status=200,
        )
        for n, record in enumerate(_ingest_records(0)[:EVENTS])
    ]


def _round(records: list, write: Callable, backend: Callable[[], float]) -> tuple[float, float]:
    """(CPU µs per event of this process, of its PostgreSQL backend)."""
    cpu, server = time.process_time(), backend()
    for first in range(0, len(records), BATCH):
        write(records[first : first + BATCH])
    return (
        (time.process_time() - cpu) / len(records) * 1e6,
        (backend() - server) / len(records) * 1e6,
    )


def measure() -> dict[str, list[tuple[float, float]]]:
    from django.db import connection

    from accounts.models import Organization
    from accounts.services import api_key_issue
    from analytics import services

    orgs = []
    for n in range(3):
        org, _ = Organization.objects.get_or_create(slug=f"bench-writer-{n}", name=f"W{n}")
        key, _ = api_key_issue(organization=org, name="bench")
        orgs.append((org.pk, key.pk))
    backend = _backend_cpu_reader(connection)
    rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for _ in range(ROUNDS):
        for name, (constraints, check, key_index, ids) in VARIANTS.items():
            with connection.cursor() as cursor:
                _constraints(cursor, on=constraints)
                _key_indexes(cursor, on=key_index)
                cursor.execute(f"VACUUM ANALYZE {TABLE}")
            unchecked: AbstractContextManager = (
                nullcontext() if check else mock.patch.object(services, "owners_hold")
            )
            with unchecked:
                for _warm in range(WARM + 1):  # the last round is measured
                    figures = _round(_records(orgs, ids), services.usage_record_batch, backend)
                rounds[name].append(figures)
    with connection.cursor() as cursor:  # the migrated schema again
        _constraints(cursor, on=False)
        _key_indexes(cursor, on=True)
    return rounds


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    rounds = measure()
    print(f"{EVENTS} events a round in batches of {BATCH}, {ROUNDS} rounds; µs of CPU an event")
    print("(the table grows each round: compare a round's variants, the paired difference)")
    print(f"{'variant':<28} {'writer':>8} {'backend':>8} {'vs fk':>7}   backend per round")
    base = rounds["fk"]
    for name, figures in rounds.items():
        writer = statistics.median(w for w, _ in figures)
        backend = statistics.median(b for _, b in figures)
        paired = statistics.median(b - b0 for (_, b), (_, b0) in zip(figures, base, strict=True))
        each = " ".join(f"{b:.1f}" for _, b in figures)
        print(f"{name:<28} {writer:8.1f} {backend:8.1f} {paired:+7.1f}   {each}")


if __name__ == "__main__":
    main()
