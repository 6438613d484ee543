"""CustomerRollup gains a split by status (dimension "status", value the status):
the customers of one status rank from it instead of from HourlyRollup.

The backfill adds, for every organization, its folded calls per (customer,
local day / ISO week / month, status), from HourlyRollup minus the deltas the
fold has not added yet (those reach the new rows through the fold, like every
new call). On PostgreSQL one statement, so HourlyRollup and the delta log are
read in one snapshot (a ledger batch writes both in one transaction), with
every organization's fold lock held until commit, so no fold adds deltas
meanwhile. Stop the old fold before migrating: an old fold running after this
would not write the status rows of what it folds.
"""

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import migrations

# Frozen here: analytics.fold.FOLD_LOCK and CustomerRollup's counters as of this migration.
FOLD_LOCK = 0x41535446
SUMMED = (
    "calls",
    "unpriced_calls",
    "streamed_calls",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cost",
    "latency_ms_sum",
)
ZONE = "COALESCE(NULLIF(o.rollup_timezone, ''), 'UTC')"
DAY = f"(h.hour AT TIME ZONE {ZONE})::date"


def _backfill_sql() -> str:
    kept = ", ".join(SUMMED)
    negated = ", ".join(f"-{name}" for name in SUMMED)
    sums = ", ".join(f"SUM(h.{name})" for name in SUMMED)
    return (
        "INSERT INTO analytics_customerrollup (organization_id, dimension, value, span, "  # noqa: S608
        f"start, customer_id, error_calls, {kept}) "
        "SELECT h.organization_id, 'status', h.status, s.sp, s.st, h.customer_id, "
        f"SUM(CASE WHEN h.status <> 'success' THEN h.calls ELSE 0 END), {sums} FROM "
        f"(SELECT organization_id, hour, customer_id, status, {kept} "
        "FROM analytics_hourlyrollup UNION ALL "
        f"SELECT organization_id, hour, customer_id, status, {negated} "
        "FROM analytics_rollupdelta) AS h "
        "JOIN accounts_organization o ON o.id = h.organization_id "
        f"CROSS JOIN LATERAL (SELECT {DAY} AS day) AS d "
        "CROSS JOIN LATERAL (VALUES ('d', d.day), "
        "('w', d.day - (EXTRACT(ISODOW FROM d.day)::int - 1)), "
        "('m', d.day - (EXTRACT(DAY FROM d.day)::int - 1))) AS s(sp, st) "
        "GROUP BY h.organization_id, h.status, s.sp, s.st, h.customer_id "
        "HAVING SUM(h.calls) <> 0"
    )


def backfill(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, id::int) FROM accounts_organization ORDER BY id",
                [FOLD_LOCK],
            )
            cursor.execute(_backfill_sql())
        return
    _backfill_python(apps)


def _backfill_python(apps):
    """SQLite: the same sums in Python (no time zones in its SQL)."""
    organization_model = apps.get_model("accounts", "Organization")
    zones = {
        pk: ZoneInfo(name or "UTC")
        for pk, name in organization_model.objects.values_list("pk", "rollup_timezone")
    }
    sums: dict[tuple, dict] = defaultdict(lambda: defaultdict(Decimal))
    columns = ("organization_id", "hour", "customer_id", "status", *SUMMED)
    for name, sign in (("HourlyRollup", 1), ("RollupDelta", -1)):
        for row in apps.get_model("analytics", name).objects.values(*columns).iterator():
            zone = zones.get(row["organization_id"])
            if zone is None:
                continue
            day = row["hour"].astimezone(zone).date()
            starts = (("d", day), ("w", day - timedelta(days=day.weekday())))
            for span, start in (*starts, ("m", day.replace(day=1))):
                key = (row["organization_id"], row["status"], span, start, row["customer_id"])
                into = sums[key]
                for counter in SUMMED:
                    into[counter] += sign * Decimal(row[counter])
                if row["status"] != "success":
                    into["error_calls"] += sign * row["calls"]
    rollup = apps.get_model("analytics", "CustomerRollup")
    rollup.objects.bulk_create(
        [
            rollup(
                organization_id=org,
                dimension="status",
                value=status,
                span=span,
                start=start,
                customer_id=customer,
                **{n: v if n == "cost" else int(v) for n, v in values.items()},
            )
            for (org, status, span, start, customer), values in sums.items()
            if values["calls"]
        ],
        batch_size=500,
    )


def unbackfill(apps, schema_editor):
    apps.get_model("analytics", "CustomerRollup").objects.filter(dimension="status").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_organization_rollup_timezone"),
        ("analytics", "0019_property_rollups"),
    ]

    operations = [migrations.RunPython(backfill, unbackfill)]
