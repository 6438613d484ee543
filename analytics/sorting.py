"""Table sorting: the `?sort=` parameter of every table and sorting rows in Python.

`?sort=cost` sorts ascending, `?sort=-cost` descending. Each table declares its
columns and the direction a header click starts with (numbers: biggest first;
names: A to Z). Ties are always broken by the row's key, ascending, so pages
never overlap or skip a row; values that are unknown (no revenue, no previous
period) sort last in both directions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from analytics.params import ParamError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sort:
    column: str
    descending: bool

    @property
    def param(self) -> str:
        return f"-{self.column}" if self.descending else self.column

    def toggled(self) -> Sort:
        return Sort(self.column, not self.descending)


def parse_sort(params: Mapping[str, str], columns: Mapping[str, bool], *, default: str) -> Sort:
    """The `sort` parameter among `columns` (name → starts descending); a bad one
    is a ParamError that lists what is allowed."""
    raw = (params.get("sort") or default).strip()
    name = raw.removeprefix("-")
    if name not in columns:
        raise ParamError(
            f"sort must be one of {', '.join(columns)} (prefix - for descending); got {raw!r}."
        )
    return Sort(name, raw.startswith("-"))


def first_click(column: str, columns: Mapping[str, bool]) -> Sort:
    """What a header click on a column not yet sorted by asks for."""
    return Sort(column, columns[column])


def sort_rows(
    rows: Iterable[T],
    *,
    value: Callable[[T], Any],
    key: Callable[[T], Any],
    descending: bool,
) -> list[T]:
    """Rows by `value` (None last in either direction), ties by `key` ascending."""
    rows = list(rows)
    known = sorted((row for row in rows if value(row) is not None), key=key)
    unknown = sorted((row for row in rows if value(row) is None), key=key)
    # list.sort is stable even with reverse=True: ties keep their key order.
    known.sort(key=value, reverse=descending)
    return known + unknown


def totals_sort_value(totals, column: str, name: Any) -> Any:
    """A breakdown row's cell as it sorts (analytics.selectors.Totals): `name`
    for the name column, the exact average cost per call (None without calls)."""
    if column == "name":
        return name
    if column == "avg_cost":
        return totals.cost / totals.calls if totals.calls else None
    return getattr(totals, column)  # calls, tokens, cost
