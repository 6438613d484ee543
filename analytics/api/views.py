"""The read API: spend summary, daily series, records, per-dimension detail, lists, traces.

Views parse parameters, call selectors and shape JSON; money is always a
decimal string. Authentication: `Authorization: Bearer ask_…` (read scope) or
a session; the organization comes from either, never from a parameter.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from analytics import selectors
from analytics.api import schemas
from analytics.api.base import (
    AGGREGATE_FILTER_DOCS,
    AGGREGATE_FILTERS,
    DATE_DOCS,
    TEXT_SCHEMA,
    TRACE_DOC,
    OrgAPIView,
    int_schema,
    money_str,
    period_json,
    record_json,
    totals_json,
)
from analytics.params import (
    ALL_FILTER_PARAMS,
    DATE_PARAMS,
    ParamError,
    parse_choice,
    parse_int,
    untagged_value,
)
from analytics.selectors import Totals
from analytics.selectors._common import change_ratio
from analytics.selectors.revenue import (
    MARGIN_SORTS,
    PROFIT_FILTERS,
    Margin,
    customer_margin_page,
    margin_of,
    margins_for,
    revenue_by_customer,
)
from analytics.selectors.tables import previous_costs, table_ranking


def margin_json(margin: Margin) -> dict[str, str | None]:
    """revenue, margin, margin_percent: null where no revenue is known, never 0."""
    return {
        "revenue": None if margin.revenue is None else money_str(margin.revenue),
        "margin": None if margin.margin is None else money_str(margin.margin),
        "margin_percent": None if margin.margin_percent is None else str(margin.margin_percent),
    }


SUMMARY_BREAKDOWNS = {
    "by_model": ("model", "model", None),
    "by_provider": ("provider", "provider", None),
    "by_customer": ("customer", "customer_id", 100),
    "by_feature": ("feature", "feature", 100),
    "by_environment": ("environment", "environment", None),
    "by_key": ("key", "key_id", None),
}
GROUP_BY_CHOICES = ("model", "provider", "customer", "feature", "environment", "key")
MAX_RECORDS = 1000
# Page-number pagination reads and skips every earlier row: bounded, and the
# cursor is there for going deeper.
MAX_PAGE = 10_000
LIMIT_DOC = OpenApiParameter(
    "limit", int_schema(1, MAX_RECORDS), description=f"1–{MAX_RECORDS}, default 100"
)
PAGE_DOC = OpenApiParameter(
    "page",
    int_schema(1, MAX_PAGE),
    description=f"1–{MAX_PAGE}: page-number pagination instead of the cursor (not both)",
)
# Summary breakdowns and daily series page too (the seed API took page/limit
# everywhere); a summary breakdown is read at most this deep.
MAX_BREAKDOWN_DEPTH = 10_000
SLICE_DOCS = [
    OpenApiParameter("page", int_schema(1, MAX_PAGE), description="1-based; with limit"),
    OpenApiParameter(
        "limit", int_schema(1, MAX_RECORDS), description="rows per list on this page (default 100)"
    ),
]


def page_slice(params) -> tuple[int, int] | None:
    """(page, limit) when either is given, else None (whole lists)."""
    page = parse_int(params, "page", default=0, minimum=1, maximum=MAX_PAGE)
    limit = parse_int(params, "limit", default=0, minimum=1, maximum=MAX_RECORDS)
    if not page and not limit:
        return None
    return page or 1, limit or 100


def _sliced(items: list, paging: tuple[int, int] | None) -> list:
    if paging is None:
        return items
    page, limit = paging
    return items[(page - 1) * limit : page * limit]


class SummaryView(OrgAPIView):
    allowed_params = (*DATE_PARAMS, *AGGREGATE_FILTERS, "page", "limit")

    @extend_schema(
        summary="Spend for a period, its change and its breakdowns",
        description="Default period: this calendar month to date. `page`/`limit` page "
        "every breakdown list alike.",
        parameters=[*DATE_DOCS, *AGGREGATE_FILTER_DOCS, *SLICE_DOCS],
        responses=schemas.SummarySchema,
    )
    def get(self, request):
        period, filters = self.period(), self.filters()
        paging = page_slice(self.params)
        if paging is not None and paging[0] * paging[1] > MAX_BREAKDOWN_DEPTH:
            raise ParamError(
                f"page × limit reaches past row {MAX_BREAKDOWN_DEPTH} of the breakdowns; "
                "use /api/customers or /api/features to go deeper."
            )
        periods = [period, period.previous()]
        with selectors.events_matched(
            organization=self.organization, filters=filters, periods=periods
        ) as filters:
            data = self._summary(period, filters, paging)
        return Response(data)

    def _summary(self, period, filters, paging) -> dict:
        org = self.organization
        summary = selectors.spend_summary(organization=org, period=period, filters=filters)
        current = summary.current
        data = {
            **period_json(period),
            "currency": "USD",
            "total_cost": money_str(current.cost),
            "total_calls": current.calls,
            "total_tokens": current.tokens,
            "input_tokens": current.input_tokens,
            "output_tokens": current.output_tokens,
            "unpriced_calls": current.unpriced_calls,
            "error_calls": current.error_calls,
            "previous": {
                **period_json(period.previous()),
                "total_cost": money_str(summary.previous.cost),
                "total_calls": summary.previous.calls,
            },
            "change": None if summary.change is None else str(summary.change),
        }
        for name, (by, key_name, limit) in SUMMARY_BREAKDOWNS.items():
            if paging is not None and limit is not None:
                limit = paging[0] * paging[1]
            rows = selectors.spend_breakdown(
                organization=org, period=period, by=by, filters=filters, limit=limit
            )
            data[name] = [totals_json(row, key_name=key_name) for row in _sliced(rows, paging)]
        if paging is not None:
            data.update(page=paging[0], limit=paging[1])
        return data


class DailyView(OrgAPIView):
    allowed_params = (*DATE_PARAMS, *AGGREGATE_FILTERS, "group_by", "page", "limit")

    @extend_schema(
        summary="Spend per local day, zero-filled",
        parameters=[
            *DATE_DOCS,
            *AGGREGATE_FILTER_DOCS,
            OpenApiParameter("group_by", OpenApiTypes.STR, enum=GROUP_BY_CHOICES),
            *SLICE_DOCS,
        ],
        responses=schemas.DailySchema,
    )
    def get(self, request):
        params = self.params
        group_by = parse_choice(params, "group_by", ("", *GROUP_BY_CHOICES), default="") or None
        daily = selectors.spend_daily(
            organization=self.organization,
            period=self.period(),
            filters=self.filters(),
            by=group_by,
        )
        paging = page_slice(params)
        data = {
            **period_json(daily.period),
            "days": [totals_json(day, key_name="date") for day in _sliced(daily.days, paging)],
            "group_by": group_by,
            "series": {
                key: [money_str(cost) for cost in _sliced(costs, paging)]
                for key, costs in daily.series.items()
            },
        }
        if paging is not None:
            data.update(page=paging[0], limit=paging[1])
        return Response(data)


class RecordsView(OrgAPIView):
    allowed_params = (*DATE_PARAMS, *ALL_FILTER_PARAMS, "limit", "cursor", "page")

    @extend_schema(
        summary="Ledger records, newest first (keyset or page-number pagination)",
        parameters=[
            *DATE_DOCS,
            *AGGREGATE_FILTER_DOCS,
            TRACE_DOC,
            LIMIT_DOC,
            OpenApiParameter("cursor", TEXT_SCHEMA, description="from `next`"),
            PAGE_DOC,
        ],
        responses=schemas.RecordPageSchema,
    )
    def get(self, request):
        params = self.params
        limit = parse_int(params, "limit", default=100, minimum=1, maximum=MAX_RECORDS)
        page_number = parse_int(params, "page", default=0, minimum=1, maximum=MAX_PAGE)
        cursor = params.get("cursor") or None
        if page_number and cursor:
            raise ParamError("Send either page or cursor, not both; `next` carries the cursor.")
        page = selectors.usage_events_page(
            organization=self.organization,
            period=self.optional_period(),
            filters=self.filters(ALL_FILTER_PARAMS),
            limit=limit,
            cursor=cursor,
            offset=(page_number - 1) * limit if page_number else 0,
        )
        next_url = None
        if page.next_cursor:
            query = request.query_params.copy()  # `property` may repeat
            for name in ("cursor", "page"):
                query.pop(name, None)
            if page_number:
                query["page"] = str(page_number + 1)
            else:
                query["cursor"] = page.next_cursor
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        data = {"results": [record_json(r) for r in page.records], "next": next_url}
        if page_number:
            data.update(page=page_number, limit=limit)
        return Response(data)


def _filters_but(name: str) -> tuple[str, ...]:
    """The aggregate filters a detail endpoint takes: all but its own dimension."""
    return tuple(param for param in AGGREGATE_FILTERS if param != name)


class _DetailView(OrgAPIView):
    """Spend of one customer / feature / model / key over a period (default 30 days),
    narrowed by any other filter."""

    default_range = "30d"
    by = ""
    key_name = ""

    @property
    def allowed_params(self):  # type: ignore[override]
        return (*DATE_PARAMS, *_filters_but(self.key_name))

    def value(self, raw):
        return raw

    def get(self, request, value):
        detail = selectors.dimension_detail(
            organization=self.organization,
            by=self.by,
            value=self.value(value),
            period=self.period(),
            filters=self.filters(_filters_but(self.key_name)),
        )
        names = {"customer": "customer_id", "key": "key_id"}
        extra = {}
        if self.by == "customer":  # revenue and margin (issue 13): null where unknown
            revenue = revenue_by_customer(
                organization=self.organization,
                period=detail.summary.period,
                customer_ids=[self.value(value)],
            )
            extra = margin_json(margin_of(revenue.get(self.value(value)), detail.totals.cost))
        return Response(
            {
                **extra,
                self.key_name: value,
                "label": detail.label,
                **period_json(detail.summary.period),
                **totals_json(detail.totals),
                "previous_cost": money_str(detail.summary.previous.cost),
                "change": None if detail.summary.change is None else str(detail.summary.change),
                "daily": [totals_json(day, key_name="date") for day in detail.daily.days],
                "breakdowns": {
                    other: [totals_json(row, key_name=names.get(other, other)) for row in rows]
                    for other, rows in detail.breakdowns.items()
                },
                "recent": [record_json(r) for r in detail.recent],
            }
        )


def _detail_schema(summary: str, response, own: str):
    docs = [doc for doc in AGGREGATE_FILTER_DOCS if doc.name != own]
    return extend_schema(summary=summary, parameters=[*DATE_DOCS, *docs], responses=response)


class ModelDetailView(_DetailView):
    by, key_name = "model", "model"

    @_detail_schema("Spend on one model", schemas.ModelDetail, "model")
    def get(self, request, value):
        return super().get(request, value)


class CustomerDetailView(_DetailView):
    by, key_name = "customer", "customer_id"

    def value(self, raw):
        return untagged_value(raw)

    @_detail_schema(
        "Spend of one customer ((untagged): calls without one)",
        schemas.CustomerDetail,
        "customer_id",
    )
    def get(self, request, value):
        return super().get(request, value)


class FeatureDetailView(_DetailView):
    by, key_name = "feature", "feature"

    def value(self, raw):
        return untagged_value(raw)

    @_detail_schema(
        "Spend of one feature ((untagged): calls without one)", schemas.FeatureDetail, "feature"
    )
    def get(self, request, value):
        return super().get(request, value)


class KeyDetailView(_DetailView):
    by, key_name = "key", "key_id"

    @_detail_schema("Spend through one API key", schemas.KeyDetail, "key_id")
    def get(self, request, value):
        return super().get(request, value)


# The list endpoints' sorts, each in one direction (biggest first; names A to
# Z), named as the pages' `?sort=` columns (analytics.views.tables).
LIST_ORDERS = {"cost": True, "calls": True, "name": False, "tokens": True, "avg_cost": True}
TREND_ORDERS = {**LIST_ORDERS, "change": True}


def change_json(totals: Totals, previous_cost: Decimal) -> dict[str, str | None]:
    """The change column: the previous equal period's cost, and (cost − previous) /
    previous to 4 decimals (null when nothing was spent before)."""
    change = change_ratio(totals.cost, previous_cost)
    return {
        "previous_cost": money_str(previous_cost),
        "change": None if change is None else str(change),
    }


class _ListView(OrgAPIView):
    """Customers, features or models of a period, from rollups: search, sort, page."""

    allowed_params: tuple[str, ...] = (
        *DATE_PARAMS,
        *AGGREGATE_FILTERS,
        "q",
        "sort",
        "page",
        "per_page",
    )
    orders: dict[str, bool] = LIST_ORDERS
    by = ""
    key_name = ""
    trend = False  # rows carry previous_cost and change

    def get(self, request):
        params = self.params
        period = self.period()
        sort = parse_choice(params, "sort", self.orders, default="cost")
        page = parse_int(params, "page", default=1, minimum=1, maximum=100_000)
        per_page = parse_int(params, "per_page", default=50, minimum=1, maximum=500)
        search = (params.get("q") or "").strip()
        results, count = self.rows(period, sort, search, per_page, (page - 1) * per_page)
        return Response(
            {
                **period_json(period),
                "results": results,
                "count": count,
                "page": page,
                "pages": max(1, -(-count // per_page)),
            }
        )

    def ranking(self, period, sort: str, search: str, limit: int, offset: int):
        return table_ranking(
            organization=self.organization,
            period=period,
            by=self.by,
            filters=self.filters(),
            order=sort,
            descending=self.orders[sort],
            search=search,
            limit=limit,
            offset=offset,
        )

    def row_json(self, totals: Totals, previous: dict) -> dict[str, Any]:
        out = totals_json(totals, key_name=self.key_name)
        if self.trend:
            out.update(change_json(totals, previous[totals.key]))
        return out

    def previous(self, period, rows: list[Totals]) -> dict:
        """Each row's cost in the previous equal period (for `trend` lists)."""
        if not self.trend:
            return {}
        return previous_costs(
            organization=self.organization,
            period=period,
            by=self.by,
            rows=rows,
            filters=self.filters(),
        )

    def rows(self, period, sort: str, search: str, limit: int, offset: int):
        """One page of JSON rows and how many there are in all."""
        ranking = self.ranking(period, sort, search, limit, offset)
        previous = self.previous(period, ranking.rows)
        return [self.row_json(row, previous) for row in ranking.rows], ranking.count


def _direction(name: str, descending: bool) -> str:
    if name == "name":
        return "A to Z"
    return "biggest first" if descending else "lowest first"


def _list_schema(response, *extra: OpenApiParameter, orders=LIST_ORDERS):
    return extend_schema(
        parameters=[
            *DATE_DOCS,
            *AGGREGATE_FILTER_DOCS,
            OpenApiParameter("q", TEXT_SCHEMA, description="substring, case-insensitive"),
            OpenApiParameter(
                "sort",
                OpenApiTypes.STR,
                enum=tuple(orders),
                description="one direction each: "
                + ", ".join(f"{name} ({_direction(name, down)})" for name, down in orders.items()),
            ),
            OpenApiParameter("page", int_schema(1, 100_000), description="default 1"),
            OpenApiParameter("per_page", int_schema(1, 500), description="1–500, default 50"),
            *extra,
        ],
        responses=response,
    )


# Customers add the margin sorts: lowest margin first (who loses money),
# highest revenue first.
CUSTOMER_ORDERS = {
    **TREND_ORDERS,
    "margin": False,
    "margin_percent": False,
    "revenue": True,
}


class CustomerListView(_ListView):
    """Customers by spend ("(untagged)": calls without a customer id), with
    revenue and margin (issue 13) and the change against the previous period;
    sortable by every column of the customers page, filterable by margin."""

    by, key_name = "customer", "customer_id"
    allowed_params = (*_ListView.allowed_params, "profit")
    orders = CUSTOMER_ORDERS
    trend = True

    @_list_schema(
        schemas.CustomerListPage,
        OpenApiParameter(
            "profit",
            OpenApiTypes.STR,
            enum=PROFIT_FILTERS,
            description="unprofitable: margin < 0; thin: margin % below the organization's "
            "threshold (Settings → Revenue). Without filters, customers with revenue but "
            "no calls count too.",
        ),
        orders=CUSTOMER_ORDERS,
    )
    def get(self, request):
        return super().get(request)

    def rows(self, period, sort: str, search: str, limit: int, offset: int):
        profit = self.params.get("profit") or None
        if profit is not None:
            profit = parse_choice(self.params, "profit", PROFIT_FILTERS, default="")
        if sort not in MARGIN_SORTS and profit is None:
            # Ranked by spend as any list; revenue is read for the page's customers only.
            ranking = self.ranking(period, sort, search, limit, offset)
            margins = margins_for(organization=self.organization, period=period, rows=ranking.rows)
            previous = self.previous(period, ranking.rows)
            return [
                {**self.row_json(row, previous), **margin_json(margins[row.key])}
                for row in ranking.rows
            ], ranking.count
        # With filters, cost (so margin) counts the calls they keep; revenue is whole.
        page, count = customer_margin_page(
            organization=self.organization,
            period=period,
            filters=self.filters(),
            sort=sort,
            descending=CUSTOMER_ORDERS[sort],
            profit=profit,
            search=search,
            limit=limit,
            offset=offset,
        )
        totals = [row.totals for row in page]
        previous = self.previous(period, totals)
        return [
            {**self.row_json(row.totals, previous), **margin_json(row.margin)} for row in page
        ], count


class FeatureListView(_ListView):
    """Features by spend, with the change against the previous period."""

    by, key_name = "feature", "feature"
    orders = TREND_ORDERS
    trend = True

    @_list_schema(schemas.FeatureListPage, orders=TREND_ORDERS)
    def get(self, request):
        return super().get(request)


class ModelListView(_ListView):
    """Models by spend."""

    by, key_name = "model", "model"

    @_list_schema(schemas.ModelListPage)
    def get(self, request):
        return super().get(request)


class TraceView(OrgAPIView):
    @extend_schema(summary="One trace: its cost and calls", responses=schemas.TraceSchema)
    def get(self, request, trace_id):
        trace = selectors.trace_detail(organization=self.organization, trace_id=trace_id)
        s = trace.summary
        return Response(
            {
                "trace_id": s.trace_id,
                "calls": s.calls,
                "cost": money_str(s.cost),
                "tokens": s.tokens,
                "started_at": s.started_at.isoformat().replace("+00:00", "Z"),
                "ended_at": s.ended_at.isoformat().replace("+00:00", "Z"),
                "models": s.models,
                "records": [record_json(r) for r in trace.records],
            }
        )
