# Ledger ingest at 10k events/s (issue 11): the delta log carries what the
# simulator's UsageShapeRollup needs (band, audio tokens, largest input), so
# the fold writes that table instead of every ingest transaction, and drops
# its foreign-key check (a lookup per delta row, for a transient log); the events
# lose the indexes no reader needs (organization alone: every ue_org_* index
# starts with it; request_id's LIKE index; (priced, model) becomes a partial
# index of the unpriced events); HourlyRollup leaves room on each page so the
# upserts of the current hour update in place (HOT) instead of re-indexing.

import django.db.models.deletion
from django.db import migrations, models

HOURLY_FILLFACTOR = 50


def _request_id_constraint(apps, schema_editor) -> None:
    """request_id's `unique=True` becomes the named ue_request_id_unique. On
    PostgreSQL the existing unique index is renamed in place (no rebuild of a
    big table's index, no moment without it) and its LIKE twin dropped."""
    event = apps.get_model("analytics", "UsageEvent")
    if schema_editor.connection.vendor != "postgresql":
        old = event._meta.get_field("request_id")
        new = models.CharField(max_length=40)
        new.set_attributes_from_name("request_id")
        schema_editor.alter_field(event, old, new)
        schema_editor.add_constraint(
            event, models.UniqueConstraint(fields=["request_id"], name="ue_request_id_unique")
        )
        return
    table = event._meta.db_table
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.conname FROM pg_constraint c JOIN pg_attribute a "
            "ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
            "WHERE c.conrelid = %s::regclass AND c.contype = 'u' AND a.attname = 'request_id' "
            "AND array_length(c.conkey, 1) = 1",
            [table],
        )
        (name,) = cursor.fetchone()
        cursor.execute(f'ALTER TABLE {table} RENAME CONSTRAINT "{name}" TO ue_request_id_unique')
        cursor.execute(
            "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_opclass o ON o.oid = x.indclass[0] "
            "WHERE x.indrelid = %s::regclass AND o.opcname = 'varchar_pattern_ops'",
            [table],
        )
        for (index,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX "{index}"')


def _hourly_fillfactor(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        table = apps.get_model("analytics", "HourlyRollup")._meta.db_table
        schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {HOURLY_FILLFACTOR})")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_organization_rollup_timezone"),
        ("analytics", "0016_reprice_run"),
    ]

    operations = [
        migrations.AddField(
            model_name="rollupdelta",
            name="band",
            field=models.PositiveSmallIntegerField(null=True),
        ),
        migrations.AddField(
            model_name="rollupdelta",
            name="input_audio_tokens",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="rollupdelta",
            name="output_audio_tokens",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="rollupdelta",
            name="max_input_tokens",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AlterField(
            model_name="rollupdelta",
            name="organization",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="accounts.organization",
            ),
        ),
        migrations.RemoveIndex(model_name="usageevent", name="ue_priced_model"),
        migrations.AddIndex(
            model_name="usageevent",
            index=models.Index(
                condition=models.Q(("priced", False)), fields=["id"], name="ue_unpriced"
            ),
        ),
        migrations.AlterField(
            model_name="usageevent",
            name="organization",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="accounts.organization",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="usageevent",
                    name="request_id",
                    field=models.CharField(max_length=40),
                ),
                migrations.AddConstraint(
                    model_name="usageevent",
                    constraint=models.UniqueConstraint(
                        fields=("request_id",), name="ue_request_id_unique"
                    ),
                ),
            ],
            database_operations=[
                migrations.RunPython(_request_id_constraint, migrations.RunPython.noop),
            ],
        ),
        migrations.RunPython(_hourly_fillfactor, migrations.RunPython.noop),
    ]
