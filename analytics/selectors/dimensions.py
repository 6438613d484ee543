"""One customer / feature / model / key: its totals, trend, top breakdowns and recent calls.

Customer ids, features and models are free text recorded by the proxy; a value
this organization has never recorded is a 404, the same as another
organization's value (the query never looks outside the organization).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from django.http import Http404

from accounts.models import ApiKey
from analytics.params import UsageFilters
from analytics.periods import Period
from analytics.selectors._common import DIMENSIONS, Totals, events_in, rollup_model, rollup_rows
from analytics.selectors.events import usage_events_page
from analytics.selectors.spend import (
    DailySeries,
    SpendChange,
    spend_breakdown,
    spend_daily,
    spend_summary,
)
from analytics.selectors.top import customers_by_name

# For each detail page: which other dimensions to break its spend down by,
# and which one splits its daily trend chart.
DETAIL_BREAKDOWNS = {
    "customer": ("model", "feature"),
    "feature": ("model", "customer"),
    "model": ("customer", "feature"),
    "key": ("model", "feature"),
    "provider": ("model", "customer"),
    "environment": ("model", "feature"),
}
DETAIL_SERIES = {
    "customer": "model",
    "feature": "model",
    "model": "feature",
    "key": "model",
    "provider": "model",
    "environment": "model",
}


@dataclass(slots=True)
class DimensionDetail:
    by: str
    value: Any
    label: str
    summary: SpendChange
    daily: DailySeries
    breakdowns: dict[str, list[Totals]]
    recent: list[dict[str, Any]]

    @property
    def totals(self) -> Totals:
        return self.summary.current


def dimension_value_exists(*, organization, by: str, value: Any) -> bool:
    """Has this organization ever recorded a call with this value?"""
    if by == "key":
        return ApiKey.objects.filter(organization=organization, pk=value).exists()
    model = rollup_model(by=by, organization=organization)
    return model.objects.filter(organization=organization, **{DIMENSIONS[by]: value}).exists()


def dimension_detail(
    *,
    organization,
    by: str,
    value: Any,
    period: Period,
    filters: UsageFilters | None = None,
    top: int = 10,
    recent: int = 20,
) -> DimensionDetail:
    """Everything a detail page shows for one value of one dimension; 404 if unknown.

    Totals compare with the previous equal period; the trend is zero-filled in
    the org zone; breakdowns are the `top` values of the other dimensions.
    `filters` narrow it further (the page's own dimension always wins).
    """
    if not dimension_value_exists(organization=organization, by=by, value=value):
        raise Http404(f"No such {by}.")
    own = {("key_id" if by == "key" else DIMENSIONS[by]): value}
    filters = replace(filters, **own) if filters is not None else UsageFilters(**own)
    label = str(value)
    if by == "key":
        key = ApiKey.objects.get(organization=organization, pk=value)
        label = f"{key.name} ({key.prefix}…)"
    return DimensionDetail(
        by=by,
        value=value,
        label=label,
        summary=spend_summary(organization=organization, period=period, filters=filters),
        daily=spend_daily(
            organization=organization, period=period, filters=filters, by=DETAIL_SERIES[by]
        ),
        breakdowns={
            # Models are "most used": by calls; customers and features by spend.
            other: spend_breakdown(
                organization=organization,
                period=period,
                by=other,
                filters=filters,
                limit=top,
                order="calls" if other == "model" else "cost",
            )
            for other in DETAIL_BREAKDOWNS[by]
        },
        recent=usage_events_page(
            organization=organization, period=period, filters=filters, limit=recent
        ).records,
    )


def api_key_labels(*, organization) -> dict[int, str]:
    """key id → "name (ask_…)" for this organization's keys (0: calls without a key)."""
    labels = {0: "(no key)"}
    for pk, name, prefix in ApiKey.objects.filter(organization=organization).values_list(
        "pk", "name", "prefix"
    ):
        labels[pk] = f"{name} ({prefix}…)"
    return labels


@dataclass(slots=True)
class FilterChoices:
    """What the filter bar offers: the organization's own values in the period."""

    providers: list[str]
    models: list[str]
    environments: list[str]
    keys: dict[int, str]  # api_key_labels
    customers: list[str]  # the first SUGGESTIONS by name ("" left out)
    features: list[str]
    properties: list[str]  # "name:value" pairs of recent calls


SUGGESTIONS = 200
# Property names and values are not rolled up: suggest those of the latest calls
# (a top-N index range scan on ue_org_created, whatever the period's size).
PROPERTY_SAMPLE = 500


def filter_choices(*, organization, period: Period) -> FilterChoices:
    """The values each filter can take in the period, from this organization only:
    providers, models and environments from one read of the coarse rollup rows,
    customers and features by name (the first SUGGESTIONS), property pairs of
    the latest PROPERTY_SAMPLE calls."""
    coarse = rollup_rows(organization=organization, period=period, by="environment").qs
    triples = set(coarse.values_list("provider", "model", "environment").distinct())
    recent = events_in(organization=organization, period=period).order_by("-created_at")
    pairs = {
        f"{name}:{value}"
        for properties in recent.values_list("properties", flat=True)[:PROPERTY_SAMPLE]
        for name, value in (properties or {}).items()
    }
    return FilterChoices(
        providers=sorted({provider for provider, _, _ in triples}),
        models=sorted({model for _, model, _ in triples}),
        environments=sorted({environment for _, _, environment in triples}),
        keys=api_key_labels(organization=organization),
        customers=_names(organization, period, "customer"),
        features=_names(organization, period, "feature"),
        properties=sorted(pairs)[:SUGGESTIONS],
    )


def _names(organization, period: Period, by: str) -> list[str]:
    """The period's first SUGGESTIONS values of `by` in name order: names
    only, from index scans (summing each name's spend cost ~30 ms a page)."""
    if by == "customer":
        names = customers_by_name(
            organization=organization, period=period, offset=0, limit=SUGGESTIONS + 1
        )
    else:
        rows = rollup_rows(organization=organization, period=period, by=by)
        column = rows.column(by)
        names = list(
            rows.qs.order_by(column).values_list(column, flat=True).distinct()[: SUGGESTIONS + 1]
        )
    return [name for name in names if name][:SUGGESTIONS]
