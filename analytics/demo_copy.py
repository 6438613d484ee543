"""The fast demo seeder (`seed_demo_usage --fast`, PostgreSQL only), for benchmark databases.

The demo generator's records (analytics.demo), made rows by the ledger's own
`event_row`, are COPY'd straight into the events table in one stream, and
every rollup is then built from the stored events in SQL
(analytics.fold.rollups_build_from_events): the same events and the same
rollups as the ledger path (analytics.demo.demo_usage_write), without a
ledger transaction and a fold per batch of 5,000.

Into empty tables (a fresh benchmark database) the load also skips the
per-row index work: the events' and rollups' secondary indexes, unique and
foreign key constraints are dropped for it and built once over all the rows
(a sort each instead of a random insert per row), and the events are COPY'd
frozen, so they need no VACUUM before index-only scans.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator

from django.db import connection, transaction
from django.utils import timezone

from accounts.services import api_key_touch_many
from analytics.demo import DemoGenerator
from analytics.fold import rollups_build_from_events
from analytics.models import UsageEvent
from analytics.records import UsageRecord
from analytics.rollups import (
    DERIVED,
    HOURLY,
    PROPERTY_CUSTOMER_DAILY,
    PROPERTY_CUSTOMER_HOURLY,
    PROPERTY_DAILY,
    PROPERTY_DAILY_MODEL,
    PROPERTY_HOURLY,
)
from analytics.services import EVENT_COPY_SQL, event_row, events_copy

EVENTS = UsageEvent._meta.db_table
ROLLUPS = (HOURLY.db_table, *(table.db_table for table in DERIVED))
# The tables loaded without their indexes when they are all empty.
TABLES = (EVENTS, *ROLLUPS)
# What the fast load writes (the property rollups through their fold's
# upserts, which need their unique keys): ANALYZE (or VACUUM) these after it.
WRITTEN = (
    *TABLES,
    *(
        table.db_table
        for table in (
            PROPERTY_HOURLY,
            PROPERTY_DAILY,
            PROPERTY_DAILY_MODEL,
            PROPERTY_CUSTOMER_HOURLY,
            PROPERTY_CUSTOMER_DAILY,
        )
    ),
)


class OrganizationHasEvents(Exception):
    """The fast load builds an organization's rollups from its events: it
    cannot add to an organization that has some."""


def demo_usage_copy(
    generator: DemoGenerator,
    *,
    every: int = 100_000,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[int, float]:
    """COPY the generator's records into the ledger and build the
    organization's rollups from them, in one transaction (PostgreSQL).

    Returns (events, seconds); `progress(done, done, elapsed)` every `every`
    records. Raises OrganizationHasEvents if the organization has events
    (nothing is written). The key ids' last use is moved as the ledger does.
    Other writers of the events and rollups wait for the load's commit.
    """
    started = time.monotonic()
    organization_id = generator.organization_id
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {EVENTS} WHERE organization_id = %s)",  # noqa: S608
            [organization_id],
        )
        if cursor.fetchone()[0]:
            raise OrganizationHasEvents(organization_id)
        cursor.execute(f"LOCK TABLE {', '.join(TABLES)} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(
            "SELECT " + " AND ".join(f"NOT EXISTS (SELECT 1 FROM {t})" for t in TABLES)  # noqa: S608
        )
        empty = cursor.fetchone()[0]
        rows = _rows(generator, every=every, progress=progress, started=started)
        if empty:
            with contextlib.ExitStack() as unindexed:
                for table in TABLES:
                    unindexed.enter_context(_unindexed(cursor, table))
                events_copy(rows, into=f"{EVENT_COPY_SQL} WITH (FREEZE)")
                rollups_build_from_events(organization_id=organization_id, into_empty=True)
        else:
            events_copy(rows)
            rollups_build_from_events(organization_id=organization_id)
        api_key_touch_many(key_ids=set(generator.key_ids.values()), at=timezone.now())
    return generator.events, time.monotonic() - started


def _rows(
    records: Iterable[UsageRecord],
    *,
    every: int,
    progress: Callable[[int, int, float], None] | None,
    started: float,
) -> Iterator[tuple]:
    for done, record in enumerate(records, start=1):
        yield event_row(record)
        if progress and done % every == 0:
            progress(done, done, time.monotonic() - started)


@contextlib.contextmanager
def _unindexed(cursor, table: str) -> Iterator[None]:
    """An empty table, emptied again in this transaction (so COPY may freeze
    its rows) and without its indexes (but the primary key), unique and
    foreign key constraints; on the way out they are built again, each in
    one pass over all the rows (the definitions are read back from the
    catalog, so they come back exactly as the migrations made them)."""
    cursor.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid "
        "AND k.conrelid = i.indrelid)",
        [table],
    )
    indexes = cursor.fetchall()
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('u', 'f') ORDER BY contype DESC",
        [table],
    )
    constraints = cursor.fetchall()
    quote = connection.ops.quote_name
    # TRUNCATE refuses a table with foreign key checks still queued in this
    # transaction (rows written and deleted earlier in it): run them first.
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    cursor.execute(f"TRUNCATE {table}")
    for name, _ in constraints:
        cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {quote(name)}")
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {quote(name)}")
    yield
    cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
    for _, definition in indexes:
        cursor.execute(definition)
    for name, definition in constraints:
        cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {quote(name)} {definition}")
