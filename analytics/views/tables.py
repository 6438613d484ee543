"""Models, Customers and Features tables: sortable, searchable, paginated, from rollups."""

from __future__ import annotations

from django.shortcuts import render

from analytics import selectors
from analytics.params import ParamError, parse_choice, parse_int
from analytics.selectors.revenue import MARGIN_SORTS
from analytics.views.common import bad_request, page_period, range_context, spend_page
from analytics.views.margin import customers_by_margin, margin_context

PER_PAGE = 50
TABLES = {
    "model": {"title": "Models", "noun": "model", "url_name": "models"},
    "customer": {"title": "Customers", "noun": "customer", "url_name": "customers"},
    "feature": {"title": "Features", "noun": "feature", "url_name": "features"},
}


def _table(request, by: str):
    org = request.organization
    try:
        period = page_period(request)
        sort = parse_choice(request.GET, "sort", ("cost", "calls", "name"), default="cost")
        page = parse_int(request.GET, "page", default=1, minimum=1, maximum=100_000)
    except ParamError as error:
        return bad_request(request, error)
    search = (request.GET.get("q") or "").strip()

    def ranking_page(number: int):
        return selectors.spend_ranking(
            organization=org,
            period=period,
            by=by,
            order=sort,
            search=search,
            limit=PER_PAGE,
            offset=(number - 1) * PER_PAGE,
        )

    ranking = ranking_page(page)
    count = ranking.count
    pages = max(1, -(-count // PER_PAGE))
    if page > pages:  # past the end: show the last page
        page = pages
        ranking = ranking_page(page)
    rows = ranking.rows
    context = {
        **range_context(request, period),
        **TABLES[by],
        "by": by,
        "rows": rows,
        "total": selectors.spend_totals(organization=org, period=period),
        "sort": sort,
        "search": search,
        "count": count,
        "page": page,
        "pages": pages,
    }
    if by == "customer":  # revenue and margin of the rows shown (issue 13)
        context.update(margin_context(request, period, rows))
    return render(request, "analytics/table.html", context)


@spend_page
def models_table(request):
    return _table(request, "model")


@spend_page
def customers_table(request):
    if request.GET.get("sort") in MARGIN_SORTS or request.GET.get("profit"):
        return customers_by_margin(request)  # a full ranking by margin (analytics.views.margin)
    return _table(request, "customer")


@spend_page
def features_table(request):
    return _table(request, "feature")
