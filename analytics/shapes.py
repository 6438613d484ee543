"""UsageShapeRollup: the token sums the cost simulator re-prices (see the model).

Written in the ledger's transaction with the other rollups, from the same
events. The sums add; `max_input_tokens` keeps the larger value, so writing
the same sums again in a fold or a rebuild would double the sums but never the
maximum: like every rollup, each event is added exactly once.
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from django.db import connection

from analytics.models import INPUT_BAND_EDGES, SHAPE_TOKENS, UsageShapeRollup

SHAPE_KEY = ("organization_id", "hour", "provider", "model", "feature", "customer_id", "band")
SHAPE_SUMS = ("calls", *SHAPE_TOKENS)
SHAPE_COUNTERS = (*SHAPE_SUMS, "max_input_tokens")


def input_band(input_tokens: int) -> int:
    """How many band edges a call's input exceeds (a tier "above N" applies when input > N)."""
    return bisect_left(INPUT_BAND_EDGES, input_tokens)


def band_floor(band: int) -> int:
    """The smallest input in a band: what a tier threshold is compared with."""
    return 0 if band == 0 else INPUT_BAND_EDGES[band - 1] + 1


def shape_sums(events: Iterable[Any], hour_of) -> dict[tuple, dict[str, int]]:
    """Events (UsageEvent or anything with its attributes) → rows keyed SHAPE_KEY."""
    rows: dict[tuple, dict[str, int]] = {}
    for event in events:
        key = (
            event.organization_id,
            hour_of(event.created_at),
            event.provider,
            event.model,
            event.feature,
            event.customer_id,
            input_band(event.input_tokens),
        )
        row = rows.get(key)
        if row is None:
            row = rows[key] = dict.fromkeys(SHAPE_COUNTERS, 0)
        row["calls"] += 1
        for name in SHAPE_TOKENS:
            row[name] += getattr(event, name)
        if event.input_tokens > row["max_input_tokens"]:
            row["max_input_tokens"] = event.input_tokens
    return rows


def usage_shapes_add(rows: dict[tuple, dict[str, int]]) -> None:
    """Add shape sums into UsageShapeRollup (inside the caller's transaction)."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        # Sorted: the lock order, so concurrent writers never deadlock.
        items = sorted(rows.items(), key=lambda item: repr(item[0]))
        columns: list[list[Any]] = [[] for _ in (*SHAPE_KEY, *SHAPE_COUNTERS)]
        for key, values in items:
            for n, part in enumerate(key):
                columns[n].append(part)
            for n, name in enumerate(SHAPE_COUNTERS, start=len(SHAPE_KEY)):
                columns[n].append(values[name])
        with connection.cursor() as cursor:
            cursor.execute(_upsert_sql(), columns)
        return
    for key, values in rows.items():
        lookup = dict(zip(SHAPE_KEY, key, strict=True))
        row = UsageShapeRollup.objects.filter(**lookup).first()
        if row is None:
            UsageShapeRollup.objects.create(**lookup, **values)
            continue
        for name in SHAPE_SUMS:
            setattr(row, name, getattr(row, name) + values[name])
        row.max_input_tokens = max(row.max_input_tokens, values["max_input_tokens"])
        row.save(update_fields=list(SHAPE_COUNTERS))


@functools.cache
def _upsert_sql() -> str:
    table = UsageShapeRollup._meta.db_table
    by_attname = {f.attname: f for f in UsageShapeRollup._meta.concrete_fields}
    names = (*SHAPE_KEY, *SHAPE_COUNTERS)
    arrays = ", ".join(f"%s::{by_attname[n].db_type(connection)}[]" for n in names)
    updates = [f"{name} = {table}.{name} + EXCLUDED.{name}" for name in SHAPE_SUMS]
    updates.append(
        f"max_input_tokens = GREATEST({table}.max_input_tokens, EXCLUDED.max_input_tokens)"
    )
    return (
        f"INSERT INTO {table} ({', '.join(names)}) "  # noqa: S608 (fixed identifiers)
        f"SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(SHAPE_KEY)}) DO UPDATE SET {', '.join(updates)}"
    )
