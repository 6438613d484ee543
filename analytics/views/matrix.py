"""The customer × feature matrix page and its CSV export (issue 12)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from django.http import HttpResponse
from django.shortcuts import render

from analytics.csv_cells import csv_cell
from analytics.params import (
    ParamError,
    UsageFilters,
    parse_int,
    untagged_label,
    untagged_value,
)
from analytics.periods import Period
from analytics.selectors.matrix import (
    FEATURE_SORT,
    MATRIX_FILTERS,
    customer_feature_matrix,
    matrix_cells_iter,
)
from analytics.sorting import Sort, parse_sort
from analytics.views.common import (
    FILTER_LABELS,
    bad_request,
    filter_bar_context,
    page_filters,
    page_period,
    range_context,
    spend_page,
)
from billing.decorators import plan_feature_required

PER_PAGE = 50
# The customer columns; each feature column sorts by its cost (`feature:<name>`).
COLUMNS = {"name": False, "calls": True, "cost": True}


def _parse_sort(params) -> tuple[Sort, str | None]:
    """The sort, and the feature whose cost it ranks by (None: the totals)."""
    raw = (params.get("sort") or "").strip()
    name = raw.removeprefix("-")
    if name.startswith(FEATURE_SORT) and len(name) > len(FEATURE_SORT):
        return Sort(name, raw.startswith("-")), untagged_value(name[len(FEATURE_SORT) :])
    return parse_sort(params, COLUMNS, default="-cost"), None


def matrix_filters(request) -> UsageFilters:
    """The filter bar's filters, refused (ParamError, a 400 that says why)
    beyond the customer and feature the matrix's rollup keeps."""
    filters = page_filters(request)
    other = [
        FILTER_LABELS[name].rstrip(" ≥≤").lower()
        for name, _ in filters.as_query()
        if name not in MATRIX_FILTERS
    ]
    if other:
        raise ParamError(
            f"The customer × feature matrix is summed from per-customer, per-feature "
            f"rollups, which do not keep {', '.join(dict.fromkeys(other))}: filter it by "
            "customer or feature, or open Customers or Requests for the other filters."
        )
    return filters


def _matrix(
    request, period: Period, filters: UsageFilters, sort: Sort, feature: str | None, page: int
):
    return customer_feature_matrix(
        organization=request.organization,
        period=period,
        order="cost" if feature is not None else sort.column,
        descending=sort.descending,
        feature=feature,
        filters=filters,
        limit=PER_PAGE,
        offset=(page - 1) * PER_PAGE,
    )


@spend_page
def matrix_page(request):
    """Cost and calls per customer per feature: which customers use which features most."""
    try:
        period = page_period(request)
        filters = matrix_filters(request)
        sort, feature = _parse_sort(request.GET)
        page = parse_int(request.GET, "page", default=1, minimum=1, maximum=100_000)
    except ParamError as error:
        return bad_request(request, error)
    matrix = _matrix(request, period, filters, sort, feature, page)
    pages = max(1, -(-matrix.count // PER_PAGE))
    if page > pages:  # past the end: show the last page
        page = pages
        matrix = _matrix(request, period, filters, sort, feature, page)
    columns = [
        {"key": f.key, "label": untagged_label(f.key), "sort": FEATURE_SORT + untagged_label(f.key)}
        for f in matrix.features
    ]
    context = {
        **range_context(request, period),
        **filter_bar_context(
            request,
            period,
            filters,
            offered=MATRIX_FILTERS,
            export_template="analytics/_matrix_export.html",
        ),
        "matrix": matrix,
        "feature_columns": columns,
        "columns": {**COLUMNS, **{column["sort"]: True for column in columns}},
        "sort": sort,
        "sorted_feature": None if feature is None else untagged_label(feature),
        "page": page,
        "pages": pages,
    }
    return render(request, "analytics/matrix.html", context)


def _csv(rows: Iterable[tuple[str, str, int, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["customer_id", "feature", "calls", "cost"])
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
    return buffer.getvalue()


@spend_page
@plan_feature_required("export")
def matrix_export(request):
    """Every (customer, feature) cell of the period (and of the filters: one
    customer, one feature) as CSV, cost at full precision (at most customers ×
    features lines: built whole, not streamed)."""
    try:
        period = page_period(request)
        filters = matrix_filters(request)
    except ParamError as error:
        return bad_request(request, error)
    rows = matrix_cells_iter(organization=request.organization, period=period, filters=filters)
    response = HttpResponse(_csv(rows), content_type="text/csv; charset=utf-8")
    name = f"aispendtrack-customer-features-{period.start}_{period.end}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response
