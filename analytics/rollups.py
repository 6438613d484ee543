"""Each rollup table described once: its key and counters are read off its model.

`RollupTable.of(Model)` takes the key dimensions from the model's unique
constraint (analytics.models.rollup_unique) and the counters from its other
columns. Everything that writes a rollup derives from that:
- `add(rows)`: PostgreSQL `INSERT … SELECT FROM unnest(…) ON CONFLICT DO UPDATE`
  (numeric arithmetic, exact) or, on SQLite, sums added in Python (SQLite
  stores decimals as REAL, so adding in SQL would round);
- `derive(rows)` / `derive_sql(source)`: the same table's rows from finer
  rows, in Python or as one `INSERT … SELECT … GROUP BY` (analytics.fold);
- the ingest bucket key (analytics.services) is HOURLY's key.

Adding a dimension is one field in `CoarseDimensions` (and the event's column).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection, models

from analytics.models import (
    COST_PLACES,
    ROLLUP_COUNTERS,
    CustomerRollup,
    DailyCoarseRollup,
    DailyModelRollup,
    HourlyCoarseRollup,
    HourlyRollup,
    RefusalRollup,
    RollupDelta,
    Status,
)

QUANTUM = Decimal(1).scaleb(-COST_PLACES)
Row = dict[str, Any]

# Counters a table computes from finer rows rather than summing a same-named
# column: the rule in Python (a fine row's contribution) and in SQL.
COMPUTED_COUNTERS: dict[str, tuple[Callable[[Row], int], str]] = {
    "error_calls": (
        lambda row: row["calls"] if row["status"] != Status.SUCCESS else 0,
        f"CASE WHEN status <> '{Status.SUCCESS}' THEN calls ELSE 0 END",
    ),
}


def quantize_cost(cost: Decimal | None) -> Decimal:
    return (cost or Decimal(0)).quantize(QUANTUM)


def zeros(counters: Iterable[str]) -> Row:
    return {name: (Decimal(0) if name == "cost" else 0) for name in counters}


def sums_add(table: dict[tuple, Row], key: tuple, values: Row, counters: tuple[str, ...]) -> Row:
    """Add `values`' counters into table[key] (a new row starts at zero)."""
    into = table.get(key)
    if into is None:
        into = table[key] = zeros(counters)
    for name in counters:
        into[name] += values[name]
    return into


@dataclass(frozen=True)
class RollupTable:
    model: type[models.Model]
    key: tuple[str, ...]  # column names, in the unique constraint's order
    counters: tuple[str, ...]
    sql_types: dict[str, str] = field(repr=False, compare=False)

    @classmethod
    def of(cls, model: type[models.Model], *, key_of: type[models.Model] | None = None):
        """`key_of`: a table without a unique key of its own (the delta log)
        takes another's."""
        (constraint,) = [
            c for c in (key_of or model)._meta.constraints if isinstance(c, models.UniqueConstraint)
        ]
        fields = {f.name: f for f in model._meta.concrete_fields}
        key = tuple(fields[name].column for name in constraint.fields)
        counters = tuple(
            f.column
            for f in model._meta.concrete_fields
            if not f.primary_key and f.column not in key
        )
        types = {f.column: f.db_type(connection) or "text" for f in fields.values()}
        return cls(model, key, counters, types)

    @property
    def db_table(self) -> str:
        return self.model._meta.db_table

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.key, *self.counters)

    # --- adding sums ----------------------------------------------------------

    def add(self, rows: dict[tuple, Row]) -> None:
        """Add counter sums into rows of this table (key tuples in `key` order),
        creating rows as needed."""
        if not rows:
            return
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(self.upsert_sql(), self.arrays(rows))
        else:
            self._merge_python(rows)

    def arrays(self, rows: dict[tuple, Row]) -> list[list[Any]]:
        """Column arrays for `unnest`, rows sorted by key: one lock order for
        every writer of a table, so two never deadlock."""
        items = sorted(rows.items(), key=lambda item: repr(item[0]))
        columns: list[list[Any]] = [[] for _ in self.columns]
        width = len(self.key)
        for key, values in items:
            for n, value in enumerate(key):
                columns[n].append(value)
            for n, name in enumerate(self.counters, start=width):
                columns[n].append(values[name])
        return columns

    def unnest_sql(self) -> str:
        types = [self.sql_types[name].split("(")[0] for name in self.columns]
        if "numeric" in types or "decimal" in types:
            types = ["numeric" if t in ("numeric", "decimal") else t for t in types]
        return f"unnest({', '.join(f'%s::{t}[]' for t in types)})"

    def conflict_sql(self) -> str:
        updates = ", ".join(f"{c} = {self.db_table}.{c} + EXCLUDED.{c}" for c in self.counters)
        return f" ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {updates}"

    @functools.cache  # noqa: B019 (a handful of module-level tables, never freed)
    def upsert_sql(self) -> str:
        return (
            f"INSERT INTO {self.db_table} ({', '.join(self.columns)}) "  # noqa: S608 (identifiers)
            f"SELECT * FROM {self.unnest_sql()}" + self.conflict_sql()
        )

    def append(self, rows: dict[tuple, Row]) -> None:
        """Insert rows as they are (the delta log, which has no unique key)."""
        if not rows:
            return
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(self.append_sql(), self.arrays(rows))
            return
        fields = {f.column: f.attname for f in self.model._meta.concrete_fields}
        self.model._default_manager.bulk_create(
            [
                self.model(
                    **{fields[name]: value for name, value in zip(self.key, key, strict=True)},
                    **{fields[name]: values[name] for name in self.counters},
                )
                for key, values in rows.items()
            ],
            batch_size=500,
        )

    @functools.cache  # noqa: B019
    def append_sql(self) -> str:
        return (
            f"INSERT INTO {self.db_table} ({', '.join(self.columns)}) "  # noqa: S608 (identifiers)
            f"SELECT * FROM {self.unnest_sql()}"
        )

    def _merge_python(self, rows: dict[tuple, Row]) -> None:
        fields = {f.column: f.attname for f in self.model._meta.concrete_fields}
        for key, values in rows.items():
            lookup = {fields[name]: value for name, value in zip(self.key, key, strict=True)}
            row = self.model._default_manager.filter(**lookup).first()
            if row is None:
                self.model._default_manager.create(
                    **lookup, **{name: values[name] for name in self.counters}
                )
                continue
            for name in self.counters:
                setattr(row, name, getattr(row, name) + values[name])
            if "cost" in self.counters:
                row.cost = quantize_cost(row.cost)  # type: ignore[attr-defined]
            row.save(update_fields=list(self.counters))

    # --- deriving from finer rows ---------------------------------------------

    def derive(self, rows: Iterable[Row]) -> dict[tuple, Row]:
        """This table's rows summed from finer rows (dicts with every key
        column of this table and the fine counters)."""
        out: dict[tuple, Row] = {}
        summed = tuple(name for name in self.counters if name not in COMPUTED_COUNTERS)
        computed = [
            (name, rule[0]) for name, rule in COMPUTED_COUNTERS.items() if name in self.counters
        ]
        for row in rows:
            into = sums_add(out, tuple(row[name] for name in self.key), row, summed)
            for name, rule in computed:
                into[name] = into.get(name, 0) + rule(row)
        return out

    def derive_sql(self, source: str) -> str:
        """INSERT … SELECT … GROUP BY from `source`, a relation with this
        table's key columns and the fine counters, adding into existing rows."""
        sums = ", ".join(
            f"SUM({COMPUTED_COUNTERS[name][1]})" if name in COMPUTED_COUNTERS else f"SUM({name})"
            for name in self.counters
        )
        keys = ", ".join(self.key)
        return (
            f"INSERT INTO {self.db_table} ({', '.join(self.columns)}) "  # noqa: S608 (identifiers)
            f"SELECT {keys}, {sums} FROM {source} GROUP BY {keys}" + self.conflict_sql()
        )


HOURLY = RollupTable.of(HourlyRollup)
DELTA = RollupTable.of(RollupDelta, key_of=HourlyRollup)
HOURLY_COARSE = RollupTable.of(HourlyCoarseRollup)
DAILY_COARSE = RollupTable.of(DailyCoarseRollup)
DAILY_MODEL = RollupTable.of(DailyModelRollup)
CUSTOMER = RollupTable.of(CustomerRollup)
REFUSALS = RollupTable.of(RefusalRollup)
# The tables folded from HourlyRollup's deltas (analytics.fold), coarsest last.
DERIVED = (HOURLY_COARSE, DAILY_COARSE, DAILY_MODEL, CUSTOMER)
# The tables keyed in local days, re-keyed when the organization's zone changes.
DAILY = (DAILY_COARSE, DAILY_MODEL, CUSTOMER)


def hourly_add(rows: dict[tuple, Row]) -> None:
    """Add bucket sums (or changes to them) into HourlyRollup and append the
    same rows to the delta log, which the fold adds to every derived table.

    PostgreSQL: one statement, the column arrays sent once."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        HOURLY.add(rows)
        DELTA.append(rows)
        return
    with connection.cursor() as cursor:
        cursor.execute(_hourly_add_sql(), HOURLY.arrays(rows))


@functools.cache
def _hourly_add_sql() -> str:
    columns = ", ".join(HOURLY.columns)
    return (
        f"WITH src ({columns}) AS (SELECT * FROM {HOURLY.unnest_sql()}), "  # noqa: S608
        f"up AS (INSERT INTO {HOURLY.db_table} ({columns}) SELECT * FROM src"
        f"{HOURLY.conflict_sql()}) "
        f"INSERT INTO {DELTA.db_table} ({columns}) SELECT * FROM src"
    )


assert HOURLY.counters == ROLLUP_COUNTERS, "HourlyRollup keeps every ROLLUP_COUNTER"  # noqa: S101
