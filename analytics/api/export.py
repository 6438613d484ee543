"""`GET /api/costs/export?format=csv|json`: every matching record, streamed.

Records are read in keyset pages of EXPORT_CHUNK and written out page by
page, so memory stays flat however many rows match. Django buffers a sync
iterator completely when serving under ASGI (and an async one under WSGI),
so the view hands it the kind of iterator the server speaks.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer

from analytics.api.base import (
    AGGREGATE_FILTER_DOCS,
    DATE_DOCS,
    TRACE_DOC,
    OrgAPIView,
    record_json,
)
from analytics.csv_cells import csv_cell as _cell
from analytics.params import ALL_FILTER_PARAMS, DATE_PARAMS, UsageFilters, parse_choice
from analytics.periods import Period
from analytics.selectors import RECORD_FIELDS, usage_events_page
from billing.selectors import plan_effective

EXPORT_CHUNK = 2000


class CSVRenderer(BaseRenderer):
    """Lets DRF's content negotiation accept `?format=csv`; the view streams itself."""

    media_type = "text/csv"
    format = "csv"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class _Pages:
    """Encoded blocks of records, one keyset page at a time."""

    def __init__(self, *, fmt: str, organization, period: Period | None, filters: UsageFilters):
        self.fmt = fmt
        self.organization = organization
        self.period = period
        self.filters = filters
        self.cursor: str | None = None
        self.done = False
        self.first = True

    def head(self) -> bytes:
        if self.fmt == "json":
            return b"["
        buffer = io.StringIO()
        csv.writer(buffer).writerow(RECORD_FIELDS)
        return buffer.getvalue().encode()

    def tail(self) -> bytes:
        return b"]\n" if self.fmt == "json" else b""

    def next_block(self) -> bytes | None:
        if self.done:
            return None
        page = usage_events_page(
            organization=self.organization,
            period=self.period,
            filters=self.filters,
            limit=EXPORT_CHUNK,
            cursor=self.cursor,
        )
        self.cursor = page.next_cursor
        self.done = page.next_cursor is None
        rows = [record_json(record) for record in page.records]
        if not rows:
            return b""
        if self.fmt == "json":
            body = ",\n".join(json.dumps(row, separators=(",", ":")) for row in rows)
            prefix = "\n" if self.first else ",\n"
            self.first = False
            return (prefix + body).encode()
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in rows:
            row["properties"] = json.dumps(row["properties"], separators=(",", ":"))
            writer.writerow([_cell(row[name]) for name in RECORD_FIELDS])
        return buffer.getvalue().encode()


def _sync_stream(pages: _Pages) -> Iterator[bytes]:
    yield pages.head()
    while (block := pages.next_block()) is not None:
        yield block
    yield pages.tail()


async def _async_stream(pages: _Pages) -> AsyncIterator[bytes]:
    yield pages.head()
    next_block = sync_to_async(pages.next_block)
    while (block := await next_block()) is not None:
        yield block
    yield pages.tail()


class ExportView(OrgAPIView):
    allowed_params = (*DATE_PARAMS, *ALL_FILTER_PARAMS)
    plan_feature = "export"  # billing.permissions.PlanFeature
    renderer_classes = [JSONRenderer, CSVRenderer]

    def perform_content_negotiation(self, request, force=False):
        # `format` picks the file type here, checked with a 400 below, not a 404.
        return (JSONRenderer(), JSONRenderer.media_type)

    @extend_schema(
        summary="Export records as CSV or JSON (streamed; same filters as /api/costs)",
        parameters=[
            OpenApiParameter("format", OpenApiTypes.STR, enum=("csv", "json")),
            *DATE_DOCS,
            *AGGREGATE_FILTER_DOCS,
            TRACE_DOC,
        ],
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY)},
    )
    def get(self, request):
        fmt = parse_choice(self.params, "format", ("csv", "json"), default="csv")
        pages = _Pages(
            fmt=fmt,
            organization=self.organization,
            period=self.optional_period(),
            filters=self.filters(ALL_FILTER_PARAMS),
        )
        stream = _async_stream(pages) if isinstance(request._request, ASGIRequest) else None
        response = StreamingHttpResponse(
            stream if stream is not None else _sync_stream(pages),
            content_type="text/csv; charset=utf-8" if fmt == "csv" else "application/json",
        )
        stamp = (
            pages.period.start.isoformat() + "_" + pages.period.end.isoformat()
            if pages.period
            else "all"
        )
        response["Content-Disposition"] = f'attachment; filename="aispendtrack-costs-{stamp}.{fmt}"'
        response["Cache-Control"] = "no-store"
        # Calls before this day are summarized only (retention purge, billing.retention).
        summarized_before = plan_effective(organization=self.organization).summarized_before
        if summarized_before is not None:
            response["x-aispendtrack-summarized-before"] = summarized_before.date().isoformat()
        return response
