"""Each rollup table described once: its key and counters are read off its model.

`RollupTable.of(Model)` takes the key dimensions from the model's unique
constraint (analytics.models.rollup_unique) and the counters from its other
columns. Everything that writes a rollup derives from that:
- `add(rows)`: PostgreSQL `INSERT … SELECT FROM unnest(…) ON CONFLICT DO UPDATE`
  (numeric arithmetic, exact) or, on SQLite, sums added in Python (SQLite
  stores decimals as REAL, so adding in SQL would round);
- `derive(rows)` / `derive_sql(source)`: the same table's rows from finer
  rows, in Python or as one `INSERT … SELECT … GROUP BY` (analytics.fold);
- the ingest bucket key (analytics.services) is the delta log's key: HOURLY's
  key and the input band of UsageShapeRollup, which the fold derives too.

Adding a dimension is one field in `CoarseDimensions` (and the event's column).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from django.db import connection, models

from analytics.intervals import spans_of
from analytics.models import (
    COST_PLACES,
    CUSTOMER_DIMENSIONS,
    ROLLUP_COUNTERS,
    CustomerRollup,
    DailyCoarseRollup,
    DailyModelRollup,
    HourlyCoarseRollup,
    HourlyRollup,
    PropertyCustomerDailyRollup,
    PropertyCustomerHourlyRollup,
    PropertyDailyModelRollup,
    PropertyDailyRollup,
    PropertyHourlyRollup,
    PropertyRollupDelta,
    RefusalRollup,
    RollupDelta,
    Status,
    UsageShapeRollup,
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
# Counters that keep the largest value instead of a sum (a maximum adds with
# max(), so folding each delta once keeps it exact like every sum).
MAXIMA = ("max_input_tokens",)


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
        if name in MAXIMA:
            into[name] = max(into[name], values[name])
        else:
            into[name] += values[name]
    return into


@dataclass(frozen=True)
class RollupTable:
    model: type[models.Model]
    key: tuple[str, ...]  # column names, in the unique constraint's order
    counters: tuple[str, ...]
    sql_types: dict[str, str] = field(repr=False, compare=False)

    @classmethod
    def of(
        cls,
        model: type[models.Model],
        *,
        key_of: type[models.Model] | None = None,
        extra_key: tuple[str, ...] = (),
    ):
        """`key_of`: a table without a unique key of its own (the delta log)
        takes another's, then `extra_key`."""
        (constraint,) = [
            c for c in (key_of or model)._meta.constraints if isinstance(c, models.UniqueConstraint)
        ]
        fields = {f.name: f for f in model._meta.concrete_fields}
        key = tuple(fields[name].column for name in (*constraint.fields, *extra_key))
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
            bulk_execute(self.upsert_sql(), self.arrays(rows))
        else:
            self._merge_python(rows)

    @staticmethod
    def sorted_items(rows: dict[tuple, Row]) -> list[tuple[tuple, Row]]:
        """Rows sorted by key: one lock order for every writer of a table, so
        two never deadlock."""
        return sorted(rows.items(), key=lambda item: repr(item[0]))

    def arrays(self, rows: dict[tuple, Row]) -> list[list[Any]]:
        """Column arrays for `unnest`, rows sorted by key (`sorted_items`)."""
        columns: list[list[Any]] = [[] for _ in self.columns]
        width = len(self.key)
        for key, values in self.sorted_items(rows):
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
        updates = ", ".join(
            f"{c} = GREATEST({self.db_table}.{c}, EXCLUDED.{c})"
            if c in MAXIMA
            else f"{c} = {self.db_table}.{c} + EXCLUDED.{c}"
            for c in self.counters
        )
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
            # COPY: psycopg dumps array parameters element by element in Python.
            connection.ensure_connection()
            with (
                connection.wrap_database_errors,
                connection.connection.cursor() as cursor,
                cursor.copy(self.copy_sql()) as copy,
            ):
                for key, values in rows.items():
                    copy.write_row((*key, *[values[name] for name in self.counters]))
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
    def copy_sql(self) -> str:
        return f"COPY {self.db_table} ({', '.join(self.columns)}) FROM STDIN"

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
                old = getattr(row, name)
                setattr(row, name, max(old, values[name]) if name in MAXIMA else old + values[name])
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

    def derive_sql(self, source: str, *, add: bool = True) -> str:
        """INSERT … SELECT … GROUP BY from `source`, a relation with this
        table's key columns and the fine counters, adding into existing rows
        (`add=False`: into an empty table, which needs no unique key then)."""
        sums = ", ".join(_aggregate_sql(name) for name in self.counters)
        keys = ", ".join(self.key)
        return (
            f"INSERT INTO {self.db_table} ({', '.join(self.columns)}) "  # noqa: S608 (identifiers)
            f"SELECT {keys}, {sums} FROM {source} GROUP BY {keys}"
            + (self.conflict_sql() if add else "")
        )


HOURLY = RollupTable.of(HourlyRollup)
# The delta log: keyed like HourlyRollup plus the shape's input band (a
# delta row is what one batch added to one hourly bucket and band).
DELTA = RollupTable.of(RollupDelta, key_of=HourlyRollup, extra_key=("band",))
HOURLY_COARSE = RollupTable.of(HourlyCoarseRollup)
DAILY_COARSE = RollupTable.of(DailyCoarseRollup)
DAILY_MODEL = RollupTable.of(DailyModelRollup)
CUSTOMER = RollupTable.of(CustomerRollup)
SHAPES = RollupTable.of(UsageShapeRollup)
REFUSALS = RollupTable.of(RefusalRollup)
# The tables folded from the delta log (analytics.fold), coarsest last, then
# the simulator's shapes (from the deltas that carry a band).
DERIVED = (HOURLY_COARSE, DAILY_COARSE, DAILY_MODEL, CUSTOMER, SHAPES)
# The tables keyed in local days, re-keyed when the organization's zone changes.
DAILY = (DAILY_COARSE, DAILY_MODEL, CUSTOMER)
# The x-property-* rollups (analytics.properties): their own delta log, keyed
# like the hourly table; folded beside the others, rebuilt with the daily ones.
PROPERTY_HOURLY = RollupTable.of(PropertyHourlyRollup)
PROPERTY_DAILY = RollupTable.of(PropertyDailyRollup)
# PropertyDailyRollup without environment, key and status (DAILY_MODEL's cut).
PROPERTY_DAILY_MODEL = RollupTable.of(PropertyDailyModelRollup)
PROPERTY_CUSTOMER_HOURLY = RollupTable.of(PropertyCustomerHourlyRollup)
PROPERTY_CUSTOMER_DAILY = RollupTable.of(PropertyCustomerDailyRollup)
# Keyed like the coarse property table plus the customer (the finer table's key).
PROPERTY_DELTA = RollupTable.of(
    PropertyRollupDelta, key_of=PropertyHourlyRollup, extra_key=("customer_id",)
)
# Delta counters HourlyRollup does not keep (the shapes' extra sums).
SHAPE_EXTRAS = tuple(name for name in DELTA.counters if name not in HOURLY.counters)


def bulk_execute(sql: str, params: Sequence[Any]) -> None:
    """Run one statement with server-side parameters (PostgreSQL).

    Django's psycopg cursor renders every parameter into the SQL text
    (ClientCursor); for a batch's column arrays that costs more than running
    the statement. A plain psycopg cursor sends them apart, and prepares a
    statement it sees repeatedly. Errors come out as Django's."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)


def hourly_of(rows: dict[tuple, Row]) -> dict[tuple, Row]:
    """Delta rows (DELTA key) summed per HourlyRollup bucket."""
    width = len(HOURLY.key)
    out: dict[tuple, Row] = {}
    for key, values in rows.items():
        sums_add(out, key[:width], values, HOURLY.counters)
    return out


def unshaped(rows: dict[tuple, Row]) -> dict[tuple, Row]:
    """HourlyRollup changes as delta rows that change no shape (band NULL):
    re-pricing changes costs, never the tokens the shapes keep."""
    extras = zeros(SHAPE_EXTRAS)
    return {(*key, None): {**values, **extras} for key, values in rows.items()}


def hourly_add(rows: dict[tuple, Row]) -> None:
    """Add delta rows (DELTA key and counters: bucket sums, or changes to them)
    into HourlyRollup, and append them to the delta log, which the fold adds
    to every derived table and UsageShapeRollup. Inside the caller's
    transaction (PostgreSQL: the rows travel through a temporary table that
    empties at commit).

    PostgreSQL: the rows are COPY'd (psycopg's array parameters are dumped
    in Python, element by element: slower than the statement they feed),
    then one statement upserts HourlyRollup and appends to the log.
    HourlyRollup rows are locked in the rows' order (sorted by key, as every
    writer does), so concurrent writers never deadlock."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        HOURLY.add(hourly_of(rows))
        DELTA.append(rows)
        return
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        cursor.execute(_STAGE_SQL)
        with cursor.copy(_STAGE_COPY_SQL) as copy:
            for n, (key, values) in enumerate(DELTA.sorted_items(rows)):
                copy.write_row((*key, *[values[name] for name in DELTA.counters], n))
        cursor.execute(_hourly_add_sql())


_STAGE = "ledger_deltas"
_STAGE_SQL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} ON COMMIT DELETE ROWS AS "  # noqa: S608
    f"SELECT {', '.join(DELTA.columns)}, 0 AS n FROM {DELTA.db_table} WITH NO DATA"
)
_STAGE_COPY_SQL = f"COPY {_STAGE} ({', '.join(DELTA.columns)}, n) FROM STDIN"


@functools.cache
def _hourly_add_sql() -> str:
    columns = ", ".join(DELTA.columns)
    sums = ", ".join(f"SUM({name})" for name in HOURLY.counters)
    keys = ", ".join(HOURLY.key)
    # The staged rows are deleted as they are read: a second call in the same
    # transaction (the table empties only at commit) sees only its own rows.
    return (
        f"WITH staged AS (DELETE FROM {_STAGE} RETURNING *), "  # noqa: S608
        f"up AS (INSERT INTO {HOURLY.db_table} ({', '.join(HOURLY.columns)}) "
        f"SELECT {keys}, {sums} FROM staged GROUP BY {keys} ORDER BY MIN(n)"
        f"{HOURLY.conflict_sql()}) "
        f"INSERT INTO {DELTA.db_table} ({columns}) SELECT {columns} FROM staged"
    )


def _aggregate_sql(name: str) -> str:
    """How a derived table's counter is computed from finer rows in SQL."""
    if name in COMPUTED_COUNTERS:
        return f"SUM({COMPUTED_COUNTERS[name][1]})"
    return f"MAX({name})" if name in MAXIMA else f"SUM({name})"


assert HOURLY.counters == ROLLUP_COUNTERS, "HourlyRollup keeps every ROLLUP_COUNTER"  # noqa: S101
assert DELTA.key[: len(HOURLY.key)] == HOURLY.key, "a delta is keyed by its hourly bucket"  # noqa: S101


# --- CustomerRollup's rows from finer rows -----------------------------------------

# CustomerRollup counters summed as they are from the finer rows.
_CUSTOMER_SUMMED = tuple(name for name in CUSTOMER.counters if name not in COMPUTED_COUNTERS)
# The rows each fine row counts in, besides its day/week/month: (dimension,
# value) as SQL over the fine row (alias u) and in Python, and the fine
# columns they need. The ledger's: the totals, the model's, the feature's.
CustomerSplits = tuple[tuple[str, ...], tuple[tuple[str, str], ...], Callable[[Row], list]]
CUSTOMER_SPLITS: CustomerSplits = (
    CUSTOMER_DIMENSIONS,
    (("''", "''"), *((f"'{name}'", f"u.{name}") for name in CUSTOMER_DIMENSIONS)),
    lambda row: [("", ""), *((name, row[name]) for name in CUSTOMER_DIMENSIONS)],
)


def customer_source_sql(source: str, splits: CustomerSplits) -> str:
    """Finer rows (with a local `day`) as CustomerRollup keys: each (customer,
    local day, split columns, status) counts in its day, ISO week and month,
    under each of `splits`' (dimension, value). Grouped per day first so a
    rebuild expands days, not hours."""
    columns, split_sql, _ = splits
    sums = ", ".join(f"SUM({name}) AS {name}" for name in _CUSTOMER_SUMMED)
    kept = ", ".join(f"u.{name}" for name in _CUSTOMER_SUMMED)
    values = ", ".join(f"({dimension}, {value})" for dimension, value in split_sql)
    # The status a row's error calls are counted by (COMPUTED_COUNTERS), split or not.
    grouped = tuple(dict.fromkeys((*columns, "status")))
    groups = ", ".join(str(n) for n in range(1, 4 + len(grouped)))
    return (
        f"(SELECT u.organization_id, x.dim AS dimension, x.val AS value, s.sp AS span, "  # noqa: S608
        f"s.st AS start, u.customer_id, u.status, {kept} FROM "
        f"(SELECT organization_id, day, customer_id, {', '.join(grouped)}, {sums} "
        f"FROM {source} GROUP BY {groups}) AS u "
        f"CROSS JOIN LATERAL (VALUES ('d', u.day), "
        f"('w', u.day - (EXTRACT(ISODOW FROM u.day)::int - 1)), "
        f"('m', u.day - (EXTRACT(DAY FROM u.day)::int - 1))) AS s(sp, st) "
        f"CROSS JOIN LATERAL (VALUES {values}) "
        f"AS x(dim, val)) AS expanded"
    )


def customer_rows(rows: Iterable[Row], splits: CustomerSplits) -> Iterator[Row]:
    """`customer_source_sql` in Python."""
    _, _, split = splits
    for row in rows:
        for span, start in spans_of(row["day"]):
            for dimension, value in split(row):
                yield {**row, "dimension": dimension, "value": value, "span": span, "start": start}
