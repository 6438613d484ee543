"""UsageEvent's organization and api_key lose their database constraints:
each constraint was a deferred check per event at commit (a lookup and a
FOR KEY SHARE lock of the referenced row), ~8 µs of the ledger writer's
PostgreSQL an event; the ledger write checks its batch's organizations and
keys once instead (analytics.services.owners_hold). Dropping a constraint is
instant (no table scan), but waits for a moment's exclusive lock on the
event table; api_key_id's index stays (a key's deletion unsets by it)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_organization_rollup_timezone"),
        ("analytics", "0026_status_index_latency"),
    ]

    operations = [
        migrations.AlterField(
            model_name="usageevent",
            name="api_key",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="accounts.apikey",
            ),
        ),
        migrations.AlterField(
            model_name="usageevent",
            name="organization",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="accounts.organization",
            ),
        ),
    ]
