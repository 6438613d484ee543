"""ue_org_status carries latency_ms, so the overview's latency sample under a
status filter is an index-only scan; and the event table is vacuumed every
1 % of inserts (PostgreSQL's default is 20 %), so the visibility map that an
index-only scan needs covers the latest calls, which that sample reads."""

from django.db import migrations, models

# PostgreSQL only: SQLite has no storage parameters (nor index-only scans to help).
INSERT_VACUUM = (
    "ALTER TABLE analytics_usageevent SET (autovacuum_vacuum_insert_scale_factor = 0.01)"
)
INSERT_VACUUM_RESET = (
    "ALTER TABLE analytics_usageevent RESET (autovacuum_vacuum_insert_scale_factor)"
)


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_organization_rollup_timezone"),
        ("analytics", "0025_property_daily_model"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="usageevent", name="ue_org_status"),
        migrations.AddIndex(
            model_name="usageevent",
            index=models.Index(
                fields=["organization", "status", "-created_at"],
                include=("latency_ms",),
                name="ue_org_status",
            ),
        ),
        migrations.RunPython(
            _on_postgresql(INSERT_VACUUM), _on_postgresql(INSERT_VACUUM_RESET), elidable=False
        ),
    ]
