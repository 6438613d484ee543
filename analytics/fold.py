"""The fold: the one way the derived rollups change.

Ingest (analytics.services) writes events and HourlyRollup, and appends what
it added to the delta log (RollupDelta, split by input band), all in the
batch's transaction. Re-pricing (analytics.repricing) does the same with its
changes. The fold, every few seconds (`manage.py rollups_fold --loop`,
started by `make run` and `make serve`; also a Celery beat task), deletes
pending deltas and adds them to HourlyCoarseRollup, DailyCoarseRollup,
DailyModelRollup, CustomerRollup and (deltas with a band) UsageShapeRollup in
ONE transaction: a crash anywhere rolls the whole step back, deltas included,
so every delta is counted in the derived tables exactly once.

Daily tables are keyed in `Organization.rollup_timezone`. When the
organization's zone changes, `daily_rollups_rebuild` re-keys them from the
hourly tables, through the same fold: it folds the organization's pending
deltas, then replaces its daily rows, in one REPEATABLE READ transaction, so
the hourly rows it reads and the deltas it consumes are the same snapshot.
Concurrency is per organization (a transaction-level advisory lock taken with
try-lock by folds and held by a rebuild): a rebuild stalls nobody's ingest
(ingest takes no organization lock) and only its own organization's fold.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import timedelta
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import F

from accounts.models import Organization
from analytics.intervals import daily_ready
from analytics.models import HourlyRollup, RollupDelta
from analytics.periods import org_zone
from analytics.properties import property_daily_rebuild, property_fold_python, property_fold_sql
from analytics.rollups import (
    CUSTOMER,
    CUSTOMER_SPLITS,
    DAILY,
    DAILY_COARSE,
    DAILY_MODEL,
    DELTA,
    DERIVED,
    HOURLY,
    HOURLY_COARSE,
    PROPERTY_DELTA,
    SHAPES,
    RollupTable,
    Row,
    customer_rows,
    customer_source_sql,
)
from analytics.services import buckets_sql, property_buckets_sql

logger = logging.getLogger(__name__)

# Advisory lock namespace (pg_advisory_xact_lock(ns, organization_id)).
FOLD_LOCK = 0x41535446
# Deltas folded per transaction: keeps each step short; the loop runs again
# at once while a step was full.
FOLD_LIMIT = 20_000
REBUILD_CHUNK_HOURS = 24


def rollups_fold_all_orgs(*, limit: int = FOLD_LIMIT) -> int:
    """Fold pending deltas of every organization not being rebuilt; returns
    how many deltas were folded. Safe to run from several processes at once."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            return _fold_sql(organization_ids=None, limit=limit)
        return _fold_python(organization_ids=None, limit=limit)


def rollups_fold_until_done() -> int:
    """Fold until nothing is pending (tests, commands, the demo seeder)."""
    total = 0
    while folded := rollups_fold_all_orgs():
        total += folded
    return total


def _zone_sql(alias: str) -> str:
    return f"COALESCE(NULLIF({alias}.rollup_timezone, ''), 'UTC')"


def _fold_sql(*, organization_ids: list[int] | None, limit: int) -> int:
    org_table = Organization._meta.db_table
    with connection.cursor() as cursor:
        if organization_ids is None:
            # FOR KEY SHARE: an organization is not deleted under a fold.
            cursor.execute(
                f"SELECT id FROM {org_table} WHERE id IN "  # noqa: S608
                f"(SELECT organization_id FROM {DELTA.db_table} "
                f"UNION SELECT organization_id FROM {PROPERTY_DELTA.db_table}) "
                f"AND pg_try_advisory_xact_lock(%s, id::int) FOR KEY SHARE",
                [FOLD_LOCK],
            )
            organization_ids = [row[0] for row in cursor.fetchall()]
        if not organization_ids:
            _drop_orphans(cursor)
            return 0
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS fold_batch ON COMMIT DELETE ROWS AS "  # noqa: S608
            f"SELECT *, NULL::date AS day FROM {DELTA.db_table} WITH NO DATA"
        )
        # Emptied at commit; also now, for folds inside a caller's transaction.
        cursor.execute("TRUNCATE fold_batch")
        cursor.execute(
            f"WITH d AS (DELETE FROM {DELTA.db_table} WHERE id IN "  # noqa: S608
            f"(SELECT id FROM {DELTA.db_table} WHERE organization_id = ANY(%s) "
            f"ORDER BY id LIMIT %s) RETURNING *) "
            f"INSERT INTO fold_batch SELECT d.*, (d.hour AT TIME ZONE {_zone_sql('o')})::date "
            f"FROM d JOIN {org_table} o ON o.id = d.organization_id",
            [organization_ids, limit],
        )
        folded = cursor.rowcount
        if folded:
            _derived_add(cursor, "fold_batch")
        folded += property_fold_sql(
            cursor, organization_ids=organization_ids, limit=limit, zone_sql=_zone_sql("o")
        )
    return folded


def _derived_add(cursor, source: str, *, add: bool = True) -> None:
    """Add `source` (delta log rows, each with its local `day`) to every
    derived table (`add=False`: into empty tables, see RollupTable.derive_sql)."""
    for table in DERIVED:
        cursor.execute(_derive_sql(table, source, add=add))


def rollups_build_from_events(*, organization_id: int, into_empty: bool = False) -> int:
    """Build an organization's HourlyRollup, derived tables and shapes from
    its stored events, for a bulk load that bypassed the ledger (the fast demo
    seeder); returns the number of delta rows the events sum to.

    The events are summed per delta log key in SQL (the ledger's bucket
    rules, analytics.services.buckets_sql), and those rows go through the
    fold's own statements, in the organization's rollup zone. The rollups
    must not hold the organization's events yet (they are added to, not
    replaced); `into_empty`: every rollup table is empty, and may lack its
    unique key (a bulk load builds it after). Inside the caller's
    transaction (PostgreSQL)."""
    org_table = Organization._meta.db_table
    columns = ", ".join(DELTA.columns)
    with connection.cursor() as cursor:
        # The GROUP BYs of millions of events hash in memory instead of sorting on disk.
        cursor.execute("SET LOCAL work_mem = '512MB'")
        cursor.execute(
            "CREATE TEMP TABLE event_buckets ON COMMIT DROP AS "  # noqa: S608
            f"SELECT {columns}, NULL::date AS day FROM {DELTA.db_table} WITH NO DATA"
        )
        cursor.execute(
            f"INSERT INTO event_buckets ({columns}, day) "  # noqa: S608
            f"SELECT b.*, (b.hour AT TIME ZONE {_zone_sql('o')})::date "
            f"FROM ({buckets_sql(where='organization_id = %s')}) AS b "
            f"JOIN {org_table} o ON o.id = b.organization_id",
            [organization_id],
        )
        buckets = cursor.rowcount
        cursor.execute("ANALYZE event_buckets")
        cursor.execute(HOURLY.derive_sql("event_buckets", add=not into_empty))
        _derived_add(cursor, "event_buckets", add=not into_empty)
        cursor.execute("DROP TABLE event_buckets")
        # The property rollups: their deltas from the events, folded through the guard.
        cursor.execute(
            f"INSERT INTO {PROPERTY_DELTA.db_table} ({', '.join(PROPERTY_DELTA.columns)}) "  # noqa: S608
            + property_buckets_sql(where="organization_id = %s"),
            [organization_id],
        )
        property_fold_sql(
            cursor,
            organization_ids=[organization_id],
            limit=2**62,
            zone_sql=_zone_sql("o"),
            add=not into_empty,
        )
    return buckets


def _drop_orphans(cursor) -> None:
    """Deltas of an organization deleted meanwhile (normally cascaded away)."""
    for log in (DELTA, PROPERTY_DELTA):
        cursor.execute(
            f"DELETE FROM {log.db_table} WHERE organization_id NOT IN "  # noqa: S608
            f"(SELECT id FROM {Organization._meta.db_table})"
        )
        if cursor.rowcount:
            logger.warning(
                "dropped %d %s rows of deleted organizations", cursor.rowcount, log.db_table
            )


def _derive_sql(table: RollupTable, source: str, *, add: bool = True) -> str:
    """`table`'s rows from `source` (a table or a parenthesised, aliased
    subquery with the hourly key columns, `day` and the counters)."""
    if table is CUSTOMER:
        return CUSTOMER.derive_sql(customer_source_sql(source, CUSTOMER_SPLITS), add=add)
    if table is SHAPES:
        shaped = f"(SELECT * FROM {source} WHERE band IS NOT NULL) AS shaped"  # noqa: S608
        return SHAPES.derive_sql(shaped, add=add)
    return table.derive_sql(source, add=add)


# --- SQLite (and any database without the SQL path) ------------------------------


def _fold_python(*, organization_ids: list[int] | None, limit: int) -> int:
    properties = property_fold_python(
        organization_ids=organization_ids, limit=limit, zones=_zones_of
    )
    deltas = RollupDelta.objects.order_by("pk")
    if organization_ids is not None:
        deltas = deltas.filter(organization_id__in=organization_ids)
    rows = list(deltas.values("pk", *DELTA.columns)[:limit])
    if not rows:
        return properties
    RollupDelta.objects.filter(pk__in=[row["pk"] for row in rows]).delete()
    zones = _zones_of({row["organization_id"] for row in rows})
    kept = [row for row in rows if row["organization_id"] in zones]
    if len(kept) < len(rows):
        logger.warning("dropped %d rollup deltas of deleted organizations", len(rows) - len(kept))
    with_days(kept, zones)
    for table in DERIVED:
        derive_add(table, kept)
    return len(rows) + properties


def _zones_of(organization_ids: set[int]) -> dict[int, ZoneInfo]:
    """The rollup zones of the organizations that still exist."""
    return {
        pk: org_zone_named(name)
        for pk, name in Organization.objects.filter(pk__in=organization_ids).values_list(
            "pk", "rollup_timezone"
        )
    }


def org_zone_named(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ValueError, KeyError):
        return ZoneInfo("UTC")


def with_days(rows: list[Row], zones: dict[int, ZoneInfo]) -> list[Row]:
    """Set each hourly row's `day`: the local date its hour starts on."""
    local: dict[tuple, object] = {}
    for row in rows:
        at = (row["organization_id"], row["hour"])
        day = local.get(at)
        if day is None:
            day = local[at] = row["hour"].astimezone(zones[row["organization_id"]]).date()
        row["day"] = day
    return rows


def derive_add(table: RollupTable, rows: list[Row]) -> None:
    if table is CUSTOMER:
        table.add(table.derive(customer_rows(rows, CUSTOMER_SPLITS)))
    elif table is SHAPES:
        table.add(table.derive(row for row in rows if row["band"] is not None))
    else:
        table.add(table.derive(rows))


# --- re-keying after a zone change -------------------------------------------------


def daily_rollups_rebuild(organization_id: int) -> int:
    """Re-key one organization's daily tables in its current zone, from the
    hourly rollups; returns the number of fine hourly rows re-grouped.

    Takes no lock on the organization row: ledger batches (of every
    organization, this one included) keep landing; only this organization's
    fold waits. Its pending deltas are folded and its daily rows replaced in
    one snapshot, so nothing is counted twice or lost.
    """
    # Inside a caller's transaction (tests) the isolation level is the caller's.
    outermost = not connection.in_atomic_block
    with _rebuild_lock(organization_id), transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        organization = Organization.objects.get(pk=organization_id)
        zone = org_zone(organization)
        if connection.vendor == "postgresql":
            _fold_sql(organization_ids=[organization_id], limit=2**62)
        else:
            _fold_python(organization_ids=[organization_id], limit=2**62)
        for table in DAILY:
            table.model._default_manager.filter(organization_id=organization_id).delete()
        Organization.objects.filter(pk=organization_id).update(rollup_timezone=zone.key)
        if connection.vendor == "postgresql":
            read = _rebuild_sql(organization_id, zone)
        else:
            read = _rebuild_python(organization_id, zone)
        property_daily_rebuild(organization_id, zone)
    logger.info("daily rollups of organization %s rebuilt in %s", organization_id, zone.key)
    return read


@contextlib.contextmanager
def _rebuild_lock(organization_id: int) -> Iterator[None]:
    """The organization's fold lock for the whole rebuild (session level, so
    it is held before the rebuild's snapshot is taken)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [FOLD_LOCK, organization_id])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [FOLD_LOCK, organization_id])


def _rebuild_sql(organization_id: int, zone: ZoneInfo) -> int:
    """Three INSERT … SELECT … GROUP BY: DailyCoarse from HourlyCoarse, DailyModel
    from DailyCoarse, CustomerRollup from HourlyRollup (each hour's local date:
    `hour AT TIME ZONE zone`)."""

    def hourly(table: RollupTable) -> str:
        return (
            f"(SELECT *, (hour AT TIME ZONE %s)::date AS day FROM {table.db_table} "  # noqa: S608
            f"WHERE organization_id = %s) AS src"
        )

    daily = f"(SELECT * FROM {DAILY_COARSE.db_table} WHERE organization_id = %s) AS src"  # noqa: S608
    by_day: list[str | int] = [zone.key, organization_id]
    with connection.cursor() as cursor:
        cursor.execute(_derive_sql(DAILY_COARSE, hourly(HOURLY_COARSE)), by_day)
        cursor.execute(_derive_sql(DAILY_MODEL, daily), [organization_id])
        cursor.execute(_derive_sql(CUSTOMER, hourly(HOURLY)), by_day)
    return HourlyRollup.objects.filter(organization_id=organization_id).count()


def _rebuild_python(organization_id: int, zone: ZoneInfo) -> int:
    """The fold's own Python path over the hourly rows, a day at a time."""
    hourly = HourlyRollup.objects.filter(organization_id=organization_id)
    first = hourly.order_by("hour").values_list("hour", flat=True).first()
    last = hourly.order_by("-hour").values_list("hour", flat=True).first()
    if first is None or last is None:
        return 0
    read = 0
    start = first
    while start <= last:  # the tables add, so weeks and months spanning chunks come out whole
        end = start + timedelta(hours=REBUILD_CHUNK_HOURS)
        rows = list(hourly.filter(hour__gte=start, hour__lt=end).values(*HOURLY.columns))
        read += len(rows)
        with_days(rows, {organization_id: zone})
        for table in DAILY:
            derive_add(table, rows)
        start = end
    return read


def daily_rollups_rebuild_pending() -> list[int]:
    """Rebuild every organization whose daily tables are keyed in another zone
    (after a zone change, an upgrade, or a change made in SQL)."""
    done = []
    candidates = Organization.objects.only("pk", "timezone", "rollup_timezone")
    for organization in candidates.exclude(timezone=F("rollup_timezone")):
        if not daily_ready(organization):
            daily_rollups_rebuild(organization.pk)
            done.append(organization.pk)
    return done
