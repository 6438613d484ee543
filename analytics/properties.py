"""The x-property-* rollups: folded from their delta log, with a cardinality guard.

Ingest (analytics.services.property_buckets) appends, in the batch's
transaction, what each batch added per (property name, value, hourly coarse
bucket) to PropertyRollupDelta. The fold (analytics.fold) calls
`property_fold_sql` / `property_fold_python` in its own transaction: the
deltas are deleted, passed through the guard and added to PropertyHourlyRollup
(UTC hours), PropertyDailyRollup and its narrower cut PropertyDailyModelRollup
(local days), so each is counted once.

The guard bounds the tables: a key rolls up while the organization has
recorded at most PROPERTY_VALUES_ROLLED distinct values for it, none longer
than PROPERTY_VALUE_ROLLED characters (PropertyValue keeps them, PropertyKey
counts them). The delta that goes past either caps the key for good: its rows
leave the property tables, its later deltas are dropped, and its filters read
the events (analytics.selectors._common.property_rows). A key's rows are thus
either complete (every call that carries it) or absent.
"""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Count, Max
from django.db.models.functions import Length

from accounts.models import Organization
from analytics.models import (
    PROPERTY_CUSTOMER_PREFIX,
    PROPERTY_VALUE_ROLLED,
    PROPERTY_VALUES_ROLLED,
    CustomerRollup,
    PropertyKey,
    PropertyRollupDelta,
    PropertyValue,
)
from analytics.rollups import (
    CUSTOMER,
    PROPERTY_CUSTOMER_DAILY,
    PROPERTY_CUSTOMER_HOURLY,
    PROPERTY_DAILY,
    PROPERTY_DAILY_MODEL,
    PROPERTY_DELTA,
    PROPERTY_HOURLY,
    CustomerSplits,
    Row,
    customer_rows,
    customer_source_sql,
)

logger = logging.getLogger(__name__)

_BATCH = "property_fold_batch"
_KEYS = PropertyKey._meta.db_table
_VALUES = PropertyValue._meta.db_table
# The property tables a capped key leaves (its values included; its
# CustomerRollup rows too, see `_customer_leave_sql`).
_CAPPED_LEAVE = (
    PROPERTY_HOURLY.db_table,
    PROPERTY_DAILY.db_table,
    PROPERTY_DAILY_MODEL.db_table,
    PROPERTY_CUSTOMER_HOURLY.db_table,
    PROPERTY_CUSTOMER_DAILY.db_table,
    _VALUES,
)
PROPERTY_CUSTOMER = (PROPERTY_CUSTOMER_HOURLY, PROPERTY_CUSTOMER_DAILY)
# CustomerRollup's rows of a property pair: dimension "x-property-<name>",
# value the property's value, in the customer's day, week and month.
PROPERTY_SPLITS: CustomerSplits = (
    ("name", "value"),
    ((f"'{PROPERTY_CUSTOMER_PREFIX}' || u.name", "u.value"),),
    lambda row: [(PROPERTY_CUSTOMER_PREFIX + row["name"], row["value"])],
)


def property_fold_sql(
    cursor, *, organization_ids: list[int], limit: int, zone_sql: str, add: bool = True
) -> int:
    """Fold up to `limit` pending property deltas of these organizations
    (PostgreSQL, inside the fold's transaction); returns how many.
    `zone_sql`: the organization's zone as an expression over alias `o`.
    `add=False`: CustomerRollup holds none of these organizations' property
    rows and may lack its unique key (a bulk load's, see
    analytics.fold.rollups_build_from_events)."""
    org_table = Organization._meta.db_table
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_BATCH} ON COMMIT DELETE ROWS AS "  # noqa: S608
        f"SELECT *, NULL::date AS day FROM {PROPERTY_DELTA.db_table} WITH NO DATA"
    )
    cursor.execute(f"TRUNCATE {_BATCH}")
    cursor.execute(
        f"WITH d AS (DELETE FROM {PROPERTY_DELTA.db_table} WHERE id IN "  # noqa: S608
        f"(SELECT id FROM {PROPERTY_DELTA.db_table} WHERE organization_id = ANY(%s) "
        f"ORDER BY id LIMIT %s) RETURNING *) "
        f"INSERT INTO {_BATCH} SELECT d.*, (d.hour AT TIME ZONE {zone_sql})::date "
        f"FROM d JOIN {org_table} o ON o.id = d.organization_id",
        [organization_ids, limit],
    )
    folded = cursor.rowcount
    if not folded:
        return 0
    _guard_sql(cursor)
    cursor.execute(PROPERTY_HOURLY.derive_sql(_BATCH))
    cursor.execute(PROPERTY_DAILY.derive_sql(_BATCH))
    cursor.execute(PROPERTY_DAILY_MODEL.derive_sql(_BATCH))
    # Deltas logged before the customer was (NULL) reach the coarse tables only.
    known = f"(SELECT * FROM {_BATCH} WHERE customer_id IS NOT NULL) AS known"  # noqa: S608
    cursor.execute(PROPERTY_CUSTOMER_HOURLY.derive_sql(known))
    cursor.execute(PROPERTY_CUSTOMER_DAILY.derive_sql(known))
    cursor.execute(CUSTOMER.derive_sql(customer_source_sql(known, PROPERTY_SPLITS), add=add))
    return folded


def _guard_sql(cursor) -> None:
    """Drop the batch's deltas of capped keys; record new values, cap the keys
    that went past the limits, and take their rows out of the property tables."""
    pair = f"(SELECT DISTINCT organization_id, name FROM {_BATCH})"  # noqa: S608
    cursor.execute(
        f"DELETE FROM {_BATCH} b USING {_KEYS} k WHERE k.organization_id = b.organization_id "  # noqa: S608
        "AND k.name = b.name AND k.capped"
    )
    cursor.execute(
        f"INSERT INTO {_VALUES} (organization_id, name, value) "  # noqa: S608
        f"SELECT DISTINCT organization_id, name, value FROM {_BATCH} ON CONFLICT DO NOTHING"
    )
    cursor.execute(
        f"INSERT INTO {_KEYS} (organization_id, name, values, capped) "  # noqa: S608
        f"SELECT organization_id, name, COUNT(*), COUNT(*) > %s OR MAX(LENGTH(value)) > %s "
        f"FROM {_VALUES} WHERE (organization_id, name) IN {pair} GROUP BY organization_id, name "
        "ON CONFLICT (organization_id, name) DO UPDATE "
        "SET values = EXCLUDED.values, capped = EXCLUDED.capped "
        f"RETURNING organization_id, name, capped",
        [PROPERTY_VALUES_ROLLED, PROPERTY_VALUE_ROLLED],
    )
    capped = [(org, name) for org, name, is_capped in cursor.fetchall() if is_capped]
    if not capped:
        return
    logger.info("property keys capped (too many or too long values): %s", capped)
    organizations = [org for org, _ in capped]
    names = [name for _, name in capped]
    for table in (_BATCH, *_CAPPED_LEAVE):
        cursor.execute(
            f"DELETE FROM {table} t USING unnest(%s::bigint[], %s::text[]) AS c(o, n) "  # noqa: S608
            "WHERE t.organization_id = c.o AND t.name = c.n",
            [organizations, names],
        )
    cursor.execute(
        f"DELETE FROM {CUSTOMER.db_table} t USING unnest(%s::bigint[], %s::text[]) AS c(o, d) "  # noqa: S608
        "WHERE t.organization_id = c.o AND t.dimension = c.d",
        [organizations, [PROPERTY_CUSTOMER_PREFIX + name for name in names]],
    )


# --- SQLite (and any database without the SQL path) ------------------------------


def property_fold_python(*, organization_ids: list[int] | None, limit: int, zones) -> int:
    """`property_fold_sql` in Python (the fold's SQLite path). `zones`: a
    callable from organization ids to their ZoneInfo (deleted ones absent)."""
    deltas = PropertyRollupDelta.objects.order_by("pk")
    if organization_ids is not None:
        deltas = deltas.filter(organization_id__in=organization_ids)
    rows = list(deltas.values("pk", *PROPERTY_DELTA.columns)[:limit])
    if not rows:
        return 0
    PropertyRollupDelta.objects.filter(pk__in=[row["pk"] for row in rows]).delete()
    known: dict[int, ZoneInfo] = zones({row["organization_id"] for row in rows})
    kept = _guard_python([row for row in rows if row["organization_id"] in known])
    for row in kept:
        row["day"] = row["hour"].astimezone(known[row["organization_id"]]).date()
    PROPERTY_HOURLY.add(PROPERTY_HOURLY.derive(kept))
    PROPERTY_DAILY.add(PROPERTY_DAILY.derive(kept))
    PROPERTY_DAILY_MODEL.add(PROPERTY_DAILY_MODEL.derive(kept))
    with_customer = [row for row in kept if row["customer_id"] is not None]
    PROPERTY_CUSTOMER_HOURLY.add(PROPERTY_CUSTOMER_HOURLY.derive(with_customer))
    PROPERTY_CUSTOMER_DAILY.add(PROPERTY_CUSTOMER_DAILY.derive(with_customer))
    CUSTOMER.add(CUSTOMER.derive(customer_rows(with_customer, PROPERTY_SPLITS)))
    return len(rows)


def _guard_python(rows: list[Row]) -> list[Row]:
    pairs = {(row["organization_id"], row["name"]) for row in rows}
    capped_before = {
        (org, name)
        for org, name in PropertyKey.objects.filter(capped=True).values_list(
            "organization_id", "name"
        )
        if (org, name) in pairs
    }
    rows = [row for row in rows if (row["organization_id"], row["name"]) not in capped_before]
    for org, name, value in {(r["organization_id"], r["name"], r["value"]) for r in rows}:
        PropertyValue.objects.get_or_create(organization_id=org, name=name, value=value)
    capped_now = set()
    for org, name in pairs - capped_before:
        counted = PropertyValue.objects.filter(organization_id=org, name=name).aggregate(
            n=Count("pk"), longest=Max(Length("value"))
        )
        capped = counted["n"] > PROPERTY_VALUES_ROLLED or counted["longest"] > PROPERTY_VALUE_ROLLED
        PropertyKey.objects.update_or_create(
            organization_id=org, name=name, defaults={"values": counted["n"], "capped": capped}
        )
        if capped:
            capped_now.add((org, name))
            tables = (PROPERTY_HOURLY, PROPERTY_DAILY, PROPERTY_DAILY_MODEL, *PROPERTY_CUSTOMER)
            for table in tables:
                table.model._default_manager.filter(organization_id=org, name=name).delete()
            CustomerRollup.objects.filter(
                organization_id=org, dimension=PROPERTY_CUSTOMER_PREFIX + name
            ).delete()
            PropertyValue.objects.filter(organization_id=org, name=name).delete()
    return [row for row in rows if (row["organization_id"], row["name"]) not in capped_now]


# --- re-keying after a zone change -------------------------------------------------


def property_daily_rebuild(organization_id: int, zone: ZoneInfo) -> None:
    """Replace one organization's PropertyDailyRollup (and its cut,
    PropertyDailyModelRollup) and PropertyCustomerDailyRollup from their
    hourly rows in `zone`, and add its
    CustomerRollup property rows from PropertyCustomerHourlyRollup (inside
    analytics.fold.daily_rollups_rebuild's snapshot, which has emptied the
    organization's CustomerRollup)."""
    for daily in (PROPERTY_DAILY, PROPERTY_DAILY_MODEL, PROPERTY_CUSTOMER_DAILY):
        daily.model._default_manager.filter(organization_id=organization_id).delete()
    if connection.vendor == "postgresql":

        def local(table) -> str:
            return (
                f"(SELECT *, (hour AT TIME ZONE %s)::date AS day FROM {table.db_table} "  # noqa: S608
                f"WHERE organization_id = %s) AS src"
            )

        by_day: list[str | int] = [zone.key, organization_id]
        with connection.cursor() as cursor:
            cursor.execute(PROPERTY_DAILY.derive_sql(local(PROPERTY_HOURLY)), by_day)
            # The cut from the daily rows just written (already in local days).
            days = f"(SELECT * FROM {PROPERTY_DAILY.db_table} WHERE organization_id = %s) AS d"  # noqa: S608
            cursor.execute(PROPERTY_DAILY_MODEL.derive_sql(days), [organization_id])
            source = local(PROPERTY_CUSTOMER_HOURLY)
            cursor.execute(PROPERTY_CUSTOMER_DAILY.derive_sql(source), by_day)
            customers = customer_source_sql(source, PROPERTY_SPLITS)
            cursor.execute(CUSTOMER.derive_sql(customers), by_day)
        return
    for table in (PROPERTY_HOURLY, PROPERTY_CUSTOMER_HOURLY):
        hourly = table.model._default_manager.filter(organization_id=organization_id)
        rows = list(hourly.values(*table.columns))
        for row in rows:
            row["day"] = row["hour"].astimezone(zone).date()
        if table is PROPERTY_HOURLY:
            PROPERTY_DAILY.add(PROPERTY_DAILY.derive(rows))
            PROPERTY_DAILY_MODEL.add(PROPERTY_DAILY_MODEL.derive(rows))
        else:
            PROPERTY_CUSTOMER_DAILY.add(PROPERTY_CUSTOMER_DAILY.derive(rows))
            CUSTOMER.add(CUSTOMER.derive(customer_rows(rows, PROPERTY_SPLITS)))
