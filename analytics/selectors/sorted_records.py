"""The requests table in any column's order: keyset pages of records.

Ordered by (column, created_at, pk), created_at and pk the other way round, so
that each order and its reverse are one index scan forwards or backwards
(ue_org_cust, ue_org_model, ...). The cursor carries the last row's three
values and the sort it belongs to; newest first stays analytics.selectors.events.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import F, Q

from analytics.params import ParamError, UsageFilters
from analytics.periods import Period
from analytics.selectors._common import events_in
from analytics.selectors.events import RecordPage, _record_values, _to_record

REQUEST_SORTS = {
    "time": "created_at",
    "model": "model",
    "customer": "customer_id",
    "feature": "feature",
    "status": "status",
    "tokens": "tokens_sum",
    "latency": "latency_ms",
    "cost": "cost",
}


def _sort_keys(order: str, descending: bool) -> list[tuple[str, bool]]:
    """(field, descending) of each ORDER BY term."""
    if order == "time":
        return [("created_at", descending), ("pk", descending)]
    return [
        (REQUEST_SORTS[order], descending),
        ("created_at", not descending),
        ("pk", not descending),
    ]


def _after(keys: list[tuple[str, bool]], values: list) -> Q:
    """Rows after `values` in the order `keys` (the keyset condition)."""
    after = Q(pk__in=[])
    same = Q()
    for (name, descending), value in zip(keys, values, strict=True):
        after |= same & Q(**{f"{name}__{'lt' if descending else 'gt'}": value})
        same &= Q(**{name: value})
    return after


def _sort_value(order: str, record: dict[str, Any]) -> Any:
    if order == "tokens":
        return record["input_tokens"] + record["output_tokens"]
    return record["created_at" if order == "time" else REQUEST_SORTS[order]]


def sorted_cursor_encode(sort: str, values: list) -> str:
    raw = json.dumps(
        [sort, *(str(v) if isinstance(v, Decimal) else v for v in values)], default=str
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def sorted_cursor_decode(cursor: str, *, sort: str, order: str) -> list:
    """The last row's (value, created_at, pk) of a cursor issued for this sort."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        issued, *values = json.loads(raw)
        if issued != sort or len(values) != len(_sort_keys(order, False)):
            raise ValueError(raw)
        *head, pk = values
        moment = [datetime.fromisoformat(v) for v in head[-1:]]
        if moment[0].tzinfo is None or not isinstance(pk, int) or not 0 < pk < 2**63:
            raise ValueError(raw)
        if order == "time":
            return [*moment, pk]
        return [_typed(order, head[0]), *moment, pk]
    except (ValueError, TypeError, UnicodeDecodeError):
        raise ParamError(
            "cursor is not one this page issued; follow the Next link as given."
        ) from None


def _typed(order: str, value: Any) -> Any:
    """The cursor's sort value as the column holds it; ValueError if it cannot be."""
    if order == "cost":
        try:
            amount = Decimal(value) if isinstance(value, str) else None
        except ArithmeticError:  # decimal.InvalidOperation
            amount = None
        if amount is None or not amount.is_finite() or abs(amount) >= 10**10:
            raise ValueError(value)
        return amount
    if order in ("tokens", "latency"):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**62:
            raise ValueError(value)
        return value
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError(value)
    return value


def usage_events_sorted_page(
    *,
    organization,
    period: Period | None = None,
    filters: UsageFilters | None = None,
    order: str = "time",
    descending: bool = True,
    limit: int = 100,
    cursor: str | None = None,
) -> RecordPage:
    """A page of records in the order of one column (REQUEST_SORTS), and the
    cursor of the next page (or None)."""
    sort = f"-{order}" if descending else order
    keys = _sort_keys(order, descending)
    qs = events_in(organization=organization, period=period, filters=filters)
    if order == "tokens":
        qs = qs.alias(tokens_sum=F("input_tokens") + F("output_tokens"))
    if cursor:
        values = sorted_cursor_decode(cursor, sort=sort, order=order)
        (lead, lead_descending), first = keys[0], values[0]
        # the plain bound on the first key lets the index scan start there
        qs = qs.filter(**{f"{lead}__{'lte' if lead_descending else 'gte'}": first})
        qs = qs.filter(_after(keys, values))
    qs = qs.order_by(*(f"-{name}" if down else name for name, down in keys))
    rows = list(_record_values(qs[: limit + 1]))
    records = [_to_record(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = records[-1]
        head = [] if order == "time" else [_sort_value(order, last)]
        next_cursor = sorted_cursor_encode(
            sort, [*head, last["created_at"].isoformat(), last["_pk"]]
        )
    return RecordPage(records=records, next_cursor=next_cursor)
