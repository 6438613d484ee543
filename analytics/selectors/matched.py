"""One pass over the events a page's filter matches (issue 12).

A page under a filter no rollup answers (a cost or latency range, a trace,
several properties) asks a dozen questions of the same matching calls: the
period's totals and the previous period's, breakdowns by model, customer and
feature, daily series, two latency samples, the forecast's month. Each used to
find those calls again in the ledger (10M events, the costliest 0.1 %: a walk
of ue_org_cost and ~10k heap rows, 8–27 ms a statement, 15 statements for the
API summary). `events_matched` finds them once: one statement copies their
counted columns (MatchedEvent) into a temporary table of the page's database
session, and the page's reads run their usual SQL on that table
(`event_source`): the same statements over the same rows, so the same figures.

PostgreSQL only; filters the property rollups answer, filters that need no
events, and matches past MATCHED_MAX_ROWS are not copied (the page reads the
ledger as before): a copy of millions of rows would spill to disk for pages
that are slow whatever they read.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Q, QuerySet

from analytics.models import MatchedEvent
from analytics.params import UsageFilters
from analytics.periods import Period
from analytics.selectors._common import events_in, property_rollups_answer

# Past this many matching calls in the page's periods, no copy (~150 bytes a
# row: 15 MB, about twice PostgreSQL's default temp_buffers).
MATCHED_MAX_ROWS = 100_000
# What is copied: MatchedEvent's columns, named as UsageEvent's.
MATCHED_COLUMNS = tuple(f.attname for f in MatchedEvent._meta.concrete_fields)
_TABLE = MatchedEvent._meta.db_table


@dataclass(frozen=True, slots=True)
class MatchedEvents:
    """The copy one page made: of which organization's events, under which
    filters, over which periods (merged, org-local days)."""

    organization_id: int
    filters: UsageFilters
    spans: tuple[Period, ...]

    def events_in(self, *, organization, period: Period, filters: UsageFilters) -> QuerySet | None:
        """The copied events of `period`, or None unless this copy holds all
        of them: the same organization, the same filters, a period inside one
        copied span."""
        if organization.pk != self.organization_id or filters != self.filters:
            return None
        inside = any(
            span.start_utc <= period.start_utc and period.end_utc <= span.end_utc
            for span in self.spans
        )
        if not inside:
            return None
        return MatchedEvent.objects.filter(
            organization=organization,
            created_at__gte=period.start_utc,
            created_at__lt=period.end_utc,
        )


def merged_spans(periods: Iterable[Period]) -> tuple[Period, ...]:
    """The periods as disjoint runs of days: overlapping or adjacent ones joined."""
    spans: list[Period] = []
    for period in sorted(periods, key=lambda p: p.start):
        if spans and period.start <= spans[-1].end + timedelta(days=1):
            last = spans[-1]
            spans[-1] = Period(last.start, max(last.end, period.end), last.zone)
        else:
            spans.append(period)
    return tuple(spans)


@contextmanager
def events_matched(
    *, organization, filters: UsageFilters, periods: Iterable[Period]
) -> Iterator[UsageFilters]:
    """The filters to build a page with: carrying a copy of the events they
    match in `periods` (every period the page reads) when that is worth it,
    else `filters` themselves. The copy lives in a transaction around the
    block (dropped at its end, rolled back with it on an error); nested use
    on one connection is an error (one table name)."""
    spans = merged_spans(periods)
    if not spans or not _worth_copying(organization=organization, filters=filters):
        yield filters
        return
    bare = replace(filters, matched=None)
    within = functools.reduce(
        operator.or_,
        (Q(created_at__gte=span.start_utc, created_at__lt=span.end_utc) for span in spans),
    )
    source = events_in(organization=organization, filters=bare).filter(within)
    sql, params = source.values(*MATCHED_COLUMNS)[: MATCHED_MAX_ROWS + 1].query.sql_with_params()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMPORARY TABLE {_TABLE} AS {sql}", params)  # noqa: S608
            copied = cursor.rowcount
            if copied <= MATCHED_MAX_ROWS:
                # Without statistics PostgreSQL guesses that a period's
                # rows are a handful and sorts them to group them; the two
                # columns every read filters on take ~3 ms (the whole table:
                # ~40) and turn the groupings into hash aggregates.
                cursor.execute(f"ANALYZE {_TABLE} (organization_id, created_at)")
        if copied > MATCHED_MAX_ROWS:
            _drop()
            yield filters
            return
        matched = MatchedEvents(organization_id=organization.pk, filters=bare, spans=spans)
        yield replace(bare, matched=matched)
        _drop()


def _worth_copying(*, organization, filters: UsageFilters) -> bool:
    return (
        connection.vendor == "postgresql"
        and filters.needs_events
        and not property_rollups_answer(organization=organization, filters=filters)
    )


def _drop() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {_TABLE}")  # noqa: S608
