"""Reads of the ledger (STYLE.md: selectors take the organization first).

Aggregates come from HourlyRollup (spend, dimensions); only record lists,
single requests, traces and export read raw UsageEvent rows (events).
"""

from analytics.selectors._common import DIMENSIONS, Totals, money
from analytics.selectors.dimensions import (
    DimensionDetail,
    api_key_labels,
    dimension_detail,
    dimension_value_exists,
)
from analytics.selectors.events import (
    RECORD_FIELDS,
    RecordPage,
    TraceDetail,
    TraceSummary,
    first_call_exists,
    requests_top_expensive,
    trace_detail,
    traces_list,
    usage_event_get_for_org,
    usage_events_iter,
    usage_events_page,
)
from analytics.selectors.spend import (
    OTHER,
    DailySeries,
    Forecast,
    Peaks,
    SpendChange,
    Unpriced,
    spend_breakdown,
    spend_breakdown_count,
    spend_daily,
    spend_forecast,
    spend_summary,
    spend_totals,
    unpriced_summary,
    usage_peaks,
)

__all__ = [
    "DIMENSIONS",
    "OTHER",
    "RECORD_FIELDS",
    "DailySeries",
    "DimensionDetail",
    "Forecast",
    "Peaks",
    "RecordPage",
    "SpendChange",
    "Totals",
    "TraceDetail",
    "TraceSummary",
    "Unpriced",
    "api_key_labels",
    "dimension_detail",
    "dimension_value_exists",
    "first_call_exists",
    "money",
    "requests_top_expensive",
    "spend_breakdown",
    "spend_breakdown_count",
    "spend_daily",
    "spend_forecast",
    "spend_summary",
    "spend_totals",
    "trace_detail",
    "traces_list",
    "unpriced_summary",
    "usage_event_get_for_org",
    "usage_events_iter",
    "usage_events_page",
    "usage_peaks",
]
