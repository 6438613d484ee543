"""Raw-event reads: record lists (keyset-paginated), one request, export, traces, top requests.

Only record lists read UsageEvent; aggregates come from rollups (spend.py).
Each query is filtered by organization first and walks an index that starts
with it (see analytics.models for the indexes).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, F, Max, Min, Q, QuerySet, Sum
from django.http import Http404

from analytics.models import RollupDelta, UsageEvent
from analytics.params import ParamError, UsageFilters
from analytics.periods import Period
from analytics.selectors._common import cost_sum, events_in, money
from analytics.selectors.reprice_runs import reprice_runs_marker

# The read API's record fields (issue 3). `id` is the public request id the
# proxy returned as x-aispendtrack-request-id; `api_key` is the key's prefix.
RECORD_FIELDS = (
    "id",
    "created_at",
    "provider",
    "endpoint",
    "model",
    "response_model",
    "customer_id",
    "feature",
    "trace_id",
    "environment",
    "properties",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "cost",
    "priced",
    "status",
    "http_status",
    "latency_ms",
    "ttfb_ms",
    "streamed",
    "upstream_request_id",
    "api_key",
)
_DB_FIELDS = tuple(name for name in RECORD_FIELDS if name not in {"id", "api_key"})


def _record_values(qs: QuerySet[UsageEvent]) -> QuerySet:
    # values() skips model instantiation: ~3x faster for pages of 1000 and for export.
    return qs.values("pk", *_DB_FIELDS, id_=F("request_id"), api_key_prefix=F("api_key__prefix"))


def _to_record(row: dict[str, Any]) -> dict[str, Any]:
    record = {name: row.get(name) for name in _DB_FIELDS}
    record["id"] = row["id_"]
    record["api_key"] = row["api_key_prefix"]
    record["_pk"] = row["pk"]
    return {name: record[name] for name in (*RECORD_FIELDS, "_pk")}


# --- Keyset pagination --------------------------------------------------------
# Newest first by (created_at, pk): a page is an index range scan whatever its
# depth, unlike OFFSET which reads and discards every earlier row.


def cursor_encode(created_at: datetime, pk: int) -> str:
    raw = f"{created_at.isoformat()}|{pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, pk = raw.rsplit("|", 1)
        moment, number = datetime.fromisoformat(stamp), int(pk)
        # Only what cursor_encode writes: an aware time and a bigint id.
        if moment.tzinfo is None or not 0 < number < 2**63:
            raise ValueError(raw)
        return moment, number
    except (ValueError, UnicodeDecodeError):
        raise ParamError(
            "cursor is not one this API issued; follow the `next` URL as given."
        ) from None


def events_after(qs: QuerySet[UsageEvent], cursor: str | None) -> QuerySet[UsageEvent]:
    """Events older than the cursor's (created_at, pk), newest first."""
    if cursor:
        stamp, pk = cursor_decode(cursor)
        # The plain `created_at <= stamp` bound is what lets the index scan
        # start at the cursor; with only the OR below, PostgreSQL walks every
        # newer row again on each page (quadratic over an export: 7 s a page
        # at 10M events).
        qs = qs.filter(created_at__lte=stamp).filter(
            Q(created_at__lt=stamp) | Q(created_at=stamp, pk__lt=pk)
        )
    return qs.order_by("-created_at", "-pk")


@dataclass(slots=True)
class RecordPage:
    records: list[dict[str, Any]]
    next_cursor: str | None


def usage_events_page(
    *,
    organization,
    period: Period | None = None,
    filters: UsageFilters | None = None,
    limit: int = 100,
    cursor: str | None = None,
    offset: int = 0,
) -> RecordPage:
    """A page of records, newest first, and the cursor of the next page (or None).

    `offset` serves page-number pagination (the seed API's `page`); the
    cursor is the cheap way through deep pages.
    """
    qs = events_after(events_in(organization=organization, period=period, filters=filters), cursor)
    rows = list(_record_values(qs[offset : offset + limit + 1]))
    records = [_to_record(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = records[-1]
        next_cursor = cursor_encode(last["created_at"], last["_pk"])
    return RecordPage(records=records, next_cursor=next_cursor)


def usage_events_iter(
    *,
    organization,
    period: Period | None = None,
    filters: UsageFilters | None = None,
    chunk_size: int = 2000,
) -> Iterator[dict[str, Any]]:
    """Every matching record, newest first, fetched in keyset chunks.

    Memory stays flat (one chunk at a time) without a server-side cursor, so
    it works the same on SQLite, PostgreSQL and behind a transaction pooler.
    """
    cursor = None
    while True:
        page = usage_events_page(
            organization=organization,
            period=period,
            filters=filters,
            limit=chunk_size,
            cursor=cursor,
        )
        yield from page.records
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def usage_event_get_for_org(*, organization, request_id: str) -> dict[str, Any]:
    """One record by its public id, or 404: the same for "missing" and "not yours"."""
    row = _record_values(events_in(organization=organization).filter(request_id=request_id)).first()
    if row is None:
        raise Http404("No such request.")
    return _to_record(row)


def requests_top_expensive(
    *, organization, period: Period, filters: UsageFilters | None = None, limit: int = 10
) -> list[dict[str, Any]]:
    """The most expensive single calls of the period (index ue_org_cost)."""
    qs = events_in(organization=organization, period=period, filters=filters)
    return [_to_record(row) for row in _record_values(qs.order_by("-cost", "-pk")[:limit])]


def first_call_exists(*, organization) -> bool:
    return events_in(organization=organization).exists()


def latest_call_marker(*, organization) -> str:
    """An opaque token that changes whenever the organization records a call,
    and again once the fold has carried it into the derived tables the
    dashboards read: the newest event's id, plus "+" while the organization
    has unfolded deltas ("" before the first call). Polled by open pages every
    few seconds: a top-1 index scan on ue_org_created and one EXISTS on the
    delta log's organization index; then, once there are calls, the
    re-pricing runs' own token (a start or an end re-renders the banner)."""
    pk = (
        events_in(organization=organization)
        .order_by("-created_at", "-pk")
        .values_list("pk", flat=True)
        .first()
    )
    if pk is None:
        return ""
    pending = RollupDelta.objects.filter(organization=organization).exists()
    runs = reprice_runs_marker(organization=organization)
    return f"{pk}{'+' if pending else ''}{runs}"


def live_marker(*, organization) -> str:
    """`latest_call_marker`, shared through the cache (Redis when configured) by
    every open page of the organization for AISPENDTRACK_LIVE_MARKER_SECONDS
    (1 s), so that N open tabs cost one marker read a second, not N every 5 s
    (bench/live_tabs.py), and a change shows that much later at most. Not kept
    before the first call (""): a new organization's first call shows at the
    next poll."""
    seconds = settings.AISPENDTRACK_LIVE_MARKER_SECONDS
    key = f"analytics:live-marker:{organization.pk}"
    marker = cache.get(key) if seconds > 0 else None
    if marker is None:
        marker = latest_call_marker(organization=organization)
        if marker and seconds > 0:
            cache.set(key, marker, seconds)
    return marker


def first_call_with_key(*, organization, api_key) -> dict[str, Any] | None:
    """The first recorded call made with `api_key` (one of `organization`'s keys),
    or None. Polled by the key page: an index range scan on ue_org_created that
    starts at the key's creation, so it reads only the calls made since then."""
    qs = events_in(organization=organization).filter(
        api_key=api_key, created_at__gte=api_key.created_at
    )
    row = _record_values(qs.order_by("created_at", "pk")[:1]).first()
    return None if row is None else _to_record(row)


# --- Traces -------------------------------------------------------------------


@dataclass(slots=True)
class TraceSummary:
    trace_id: str
    calls: int
    cost: Decimal
    tokens: int
    started_at: datetime
    ended_at: datetime
    models: list[str] | None = None

    @property
    def duration(self) -> timedelta:
        """From the first call's start to the last call's start."""
        return self.ended_at - self.started_at


@dataclass(slots=True)
class TraceDetail:
    summary: TraceSummary
    records: list[dict[str, Any]]


TRACE_RECORD_LIMIT = 1000


def trace_detail(*, organization, trace_id: str) -> TraceDetail:
    """Cost and calls of one trace, and its calls in time order; 404 if it has none."""
    if not trace_id:
        raise Http404("No such trace.")
    qs = events_in(organization=organization).filter(trace_id=trace_id)
    agg = qs.aggregate(
        n=Count("pk"),
        c=cost_sum(),
        tokens=Sum(F("input_tokens") + F("output_tokens")),
        started_at=Min("created_at"),
        ended_at=Max("created_at"),
    )
    if not agg["n"]:
        raise Http404("No such trace.")
    rows = _record_values(qs.order_by("created_at", "pk")[:TRACE_RECORD_LIMIT])
    records = [_to_record(row) for row in rows]
    summary = TraceSummary(
        trace_id=trace_id,
        calls=agg["n"],
        cost=money(agg["c"]),
        tokens=agg["tokens"] or 0,
        started_at=agg["started_at"],
        ended_at=agg["ended_at"],
        models=sorted({r["model"] for r in records}),
    )
    return TraceDetail(summary=summary, records=records)


TRACE_SCAN_LIMIT = 5000
# What each column of the traces table sorts by (ties: the trace id).
TRACE_ORDERS = {
    "trace": "trace_id",
    "calls": "n",
    "tokens": "tokens",
    "started": "started_at",
    "duration": "duration",
    "cost": "c",
}


def traces_list(
    *,
    organization,
    period: Period,
    filters: UsageFilters | None = None,
    prefix: str = "",
    order: str = "cost",
    descending: bool = True,
    limit: int = 50,
) -> list[TraceSummary]:
    """Cost and calls per trace_id, among the most recent TRACE_SCAN_LIMIT traced
    calls of the period (rollups carry no trace_id, so this bounds the scan),
    most expensive first unless `order` (TRACE_ORDERS) says. `prefix`: trace
    ids starting with it (index ue_org_trace's pattern ops)."""
    traced = events_in(organization=organization, period=period, filters=filters)
    traced = traced.filter(trace_id__startswith=prefix) if prefix else traced.exclude(trace_id="")
    recent = traced.order_by("-created_at").values("pk")[:TRACE_SCAN_LIMIT]
    column = TRACE_ORDERS[order]
    rows = (
        UsageEvent.objects.filter(organization=organization, pk__in=recent)
        .values("trace_id")
        .annotate(
            n=Count("pk"),
            c=cost_sum(),
            tokens=Sum(F("input_tokens") + F("output_tokens")),
            started_at=Min("created_at"),
            ended_at=Max("created_at"),
            duration=F("ended_at") - F("started_at"),
        )
        .order_by(f"-{column}" if descending else column, "trace_id")[:limit]
    )
    return [
        TraceSummary(
            trace_id=row["trace_id"],
            calls=row["n"],
            cost=money(row["c"]),
            tokens=row["tokens"] or 0,
            started_at=row["started_at"],
            ended_at=row["ended_at"],
        )
        for row in rows
    ]
