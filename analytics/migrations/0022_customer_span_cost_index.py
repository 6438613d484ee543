"""cr_top_cost becomes cr_span_cost: the same key with the customer after the
cost, so every customer's cost of an interval is an index-only scan
(analytics.selectors._common.customer_costs) instead of a heap page a row.
Built CONCURRENTLY on PostgreSQL before the old one is dropped, so rankings
keep an index and the fold keeps writing meanwhile."""

from django.db import migrations, models

OLD = models.Index(
    fields=["organization", "dimension", "value", "span", "start", "-cost"], name="cr_top_cost"
)
NEW = models.Index(
    fields=["organization", "dimension", "value", "span", "start", "-cost", "customer_id"],
    name="cr_span_cost",
)


def _swap(apps, schema_editor, add: models.Index, drop: models.Index) -> None:
    model = apps.get_model("analytics", "CustomerRollup")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.add_index(model, add)
        schema_editor.remove_index(model, drop)
        return
    sql = str(add.create_sql(model, schema_editor, concurrently=True))
    schema_editor.execute(sql.replace("CONCURRENTLY", "CONCURRENTLY IF NOT EXISTS", 1))
    schema_editor.execute(
        f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(drop.name)}"
    )


def forwards(apps, schema_editor):
    _swap(apps, schema_editor, NEW, OLD)


def backwards(apps, schema_editor):
    _swap(apps, schema_editor, OLD, NEW)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("analytics", "0021_property_customer_rollups")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="customerrollup", name="cr_top_cost"),
                migrations.AddIndex(model_name="customerrollup", index=NEW),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        )
    ]
