"""Response shapes for the OpenAPI schema (/api/schema, /api/docs).

The views build their JSON with the plain functions in analytics.api.base
(several times faster than serializers for 1,000-record pages); these classes
only describe it. tests/analytics/test_api.py checks the record fields agree.
"""

from __future__ import annotations

from rest_framework import serializers

from analytics.selectors import RECORD_FIELDS


class TotalsSchema(serializers.Serializer):
    cost = serializers.DecimalField(max_digits=20, decimal_places=10, help_text="USD, a string")
    calls = serializers.IntegerField()
    tokens = serializers.IntegerField(help_text="input + output")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    unpriced_calls = serializers.IntegerField(help_text="calls on models with no price yet")
    error_calls = serializers.IntegerField(help_text="calls whose status is not success")
    avg_cost_per_call = serializers.DecimalField(max_digits=20, decimal_places=10)


class MarginFields(serializers.Serializer):
    """Customers only (issue 13): always present, null where no revenue is known, never 0."""

    revenue = serializers.DecimalField(
        max_digits=20,
        decimal_places=10,
        allow_null=True,
        help_text="USD revenue over the period (each entry spread over its days); "
        "null if none is known",
    )
    margin = serializers.DecimalField(
        max_digits=20,
        decimal_places=10,
        allow_null=True,
        help_text="revenue − cost; null if no revenue is known",
    )
    # A margin % can be huge (a cent of revenue against dollars of cost): no digit cap.
    margin_percent = serializers.DecimalField(
        max_digits=None,
        decimal_places=2,
        allow_null=True,
        help_text="margin / revenue × 100, 2 decimals; null if revenue is unknown or 0",
    )


class ChangeFields(serializers.Serializer):
    """Customers and features lists: the change column of their pages."""

    previous_cost = serializers.DecimalField(
        max_digits=20, decimal_places=10, help_text="USD over the previous equal period"
    )
    change = serializers.DecimalField(
        max_digits=None,
        decimal_places=4,
        allow_null=True,
        help_text="(cost − previous_cost) / previous_cost, 4 decimals; null if nothing "
        "was spent before (sort=change ranks those first: new)",
    )


def _keyed(name: str, field: serializers.Field) -> type[serializers.Serializer]:
    return type(f"{name.title().replace('_', '')}Totals", (TotalsSchema,), {name: field})


ModelTotals = _keyed("model", serializers.CharField())
ProviderTotals = _keyed("provider", serializers.CharField())
CustomerTotals = _keyed("customer_id", serializers.CharField(help_text='"(untagged)" if none'))
FeatureTotals = _keyed("feature", serializers.CharField(help_text='"(untagged)" if none'))
EnvironmentTotals = _keyed("environment", serializers.CharField())
KeyTotals = _keyed("key_id", serializers.IntegerField(help_text="0: calls without a key"))
DayTotals = _keyed("date", serializers.DateField())


class PeriodSchema(serializers.Serializer):
    start_date = serializers.DateField()
    end_date = serializers.DateField()
    timezone = serializers.CharField(help_text="the organization's IANA zone; days are local")


class SummarySchema(PeriodSchema):
    page = serializers.IntegerField(required=False, help_text="only with ?page= or ?limit=")
    limit = serializers.IntegerField(required=False, help_text="only with ?page= or ?limit=")
    currency = serializers.CharField()
    total_cost = serializers.DecimalField(max_digits=20, decimal_places=10)
    total_calls = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    unpriced_calls = serializers.IntegerField()
    error_calls = serializers.IntegerField()
    previous = PeriodSchema(help_text="the equal-length period just before, with its totals")
    change = serializers.DecimalField(
        max_digits=12, decimal_places=4, allow_null=True, help_text="cost ratio vs previous"
    )
    by_model = ModelTotals(many=True)
    by_provider = ProviderTotals(many=True)
    by_customer = CustomerTotals(many=True, help_text="top 100 by cost; see /api/customers")
    by_feature = FeatureTotals(many=True, help_text="top 100 by cost; see /api/features")
    by_environment = EnvironmentTotals(many=True)
    by_key = KeyTotals(many=True)


class DailySchema(PeriodSchema):
    page = serializers.IntegerField(required=False, help_text="only with ?page= or ?limit=")
    limit = serializers.IntegerField(required=False, help_text="only with ?page= or ?limit=")
    days = DayTotals(many=True)
    group_by = serializers.CharField(allow_null=True)
    series = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="cost per day for each of the top values of group_by, plus (other)",
    )


class RecordSchema(serializers.Serializer):
    id = serializers.CharField(help_text="the request id (x-aispendtrack-request-id)")
    created_at = serializers.DateTimeField()
    provider = serializers.CharField()
    endpoint = serializers.CharField()
    model = serializers.CharField()
    response_model = serializers.CharField()
    customer_id = serializers.CharField()
    feature = serializers.CharField()
    trace_id = serializers.CharField()
    environment = serializers.CharField()
    properties = serializers.DictField(child=serializers.CharField())
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cached_input_tokens = serializers.IntegerField()
    cache_write_tokens = serializers.IntegerField()
    cache_write_1h_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=20, decimal_places=10)
    priced = serializers.BooleanField()
    status = serializers.CharField()
    http_status = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField()
    ttfb_ms = serializers.IntegerField(allow_null=True)
    streamed = serializers.BooleanField()
    upstream_request_id = serializers.CharField()
    api_key = serializers.CharField(allow_null=True, help_text="the key's display prefix")


assert tuple(RecordSchema().fields) == RECORD_FIELDS  # noqa: S101 (schema must match the API)


class RecordPageSchema(serializers.Serializer):
    results = RecordSchema(many=True)
    next = serializers.URLField(allow_null=True, help_text="the next page (cursor or page)")
    page = serializers.IntegerField(required=False, help_text="only with ?page=")
    limit = serializers.IntegerField(required=False, help_text="only with ?page=")


class DetailSchema(PeriodSchema, TotalsSchema):
    # A field named like Field.label: DRF's metaclass moves it off the class.
    label = serializers.CharField(  # type: ignore[assignment]
        help_text="how the pages name it (a key: its name and prefix)"
    )
    previous_cost = serializers.DecimalField(max_digits=20, decimal_places=10)
    change = serializers.DecimalField(max_digits=12, decimal_places=4, allow_null=True)
    daily = DayTotals(many=True)
    breakdowns = serializers.DictField(child=TotalsSchema(many=True))
    recent = RecordSchema(many=True)


class ListPageSchema(PeriodSchema):
    results = TotalsSchema(many=True)
    count = serializers.IntegerField()
    page = serializers.IntegerField()
    pages = serializers.IntegerField()


def _list_page(row: type[serializers.Serializer]) -> type[serializers.Serializer]:
    name = row.__name__.removesuffix("Totals").removesuffix("Row")
    return type(f"{name}ListPage", (ListPageSchema,), {"results": row(many=True)})


def _detail(keyed: type[serializers.Serializer], *extra: type) -> type[serializers.Serializer]:
    """A detail page: DetailSchema plus the dimension's key field (from its Totals)."""
    return type(f"{keyed.__name__.removesuffix('Totals')}Detail", (DetailSchema, keyed, *extra), {})


CustomerRow = type(
    "CustomerRow",
    (CustomerTotals, ChangeFields, MarginFields),
    {
        "__doc__": "A customer's spend and its change, and its revenue and margin "
        "(null where unknown, never 0)."
    },
)
FeatureRow = type(
    "FeatureRow",
    (FeatureTotals, ChangeFields),
    {"__doc__": "A feature's spend and its change against the previous period."},
)
CustomerListPage = _list_page(CustomerRow)
FeatureListPage = _list_page(FeatureRow)
ModelListPage = _list_page(ModelTotals)
ModelDetail = _detail(ModelTotals)
CustomerDetail = _detail(CustomerTotals, MarginFields)
FeatureDetail = _detail(FeatureTotals)
KeyDetail = _detail(KeyTotals)


class TraceSchema(serializers.Serializer):
    trace_id = serializers.CharField()
    calls = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=20, decimal_places=10)
    tokens = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField()
    models = serializers.ListField(child=serializers.CharField())
    records = RecordSchema(many=True)
