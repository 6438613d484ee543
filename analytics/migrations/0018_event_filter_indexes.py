"""Indexes for the filters no rollup answers (issue 12): latency ranges and
x-property-* values. Built CONCURRENTLY on PostgreSQL, so a ledger of millions
of events keeps taking writes meanwhile; the GIN index is PostgreSQL's only
(SQLite filters properties with a scan of the period's events)."""

from django.contrib.postgres.indexes import GinIndex
from django.db import migrations, models

LATENCY = models.Index(fields=["organization", "latency_ms"], name="ue_org_latency")
PROPERTIES = GinIndex(fields=["properties"], opclasses=["jsonb_path_ops"], name="ue_properties")


class AddIndexWhereSupported(migrations.AddIndex):
    """AddIndex, built CONCURRENTLY on PostgreSQL; `postgresql_only` indexes are
    skipped elsewhere (the model state has them everywhere)."""

    def __init__(self, model_name, index, *, postgresql_only=False):
        super().__init__(model_name, index)
        self.postgresql_only = postgresql_only

    def deconstruct(self):
        name, args, kwargs = super().deconstruct()
        return name, args, {**kwargs, "postgresql_only": self.postgresql_only}

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        vendor = schema_editor.connection.vendor
        if vendor != "postgresql":
            if not self.postgresql_only:
                super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        model = to_state.apps.get_model(app_label, self.model_name)
        sql = str(self.index.create_sql(model, schema_editor, concurrently=True))
        schema_editor.execute(sql.replace("CONCURRENTLY", "CONCURRENTLY IF NOT EXISTS", 1))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql" or not self.postgresql_only:
            schema_editor.execute(
                f"DROP INDEX IF EXISTS {schema_editor.quote_name(self.index.name)}"
            )


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("analytics", "0017_ledger_ingest_lean")]

    operations = [
        AddIndexWhereSupported("usageevent", LATENCY),
        AddIndexWhereSupported("usageevent", PROPERTIES, postgresql_only=True),
    ]
