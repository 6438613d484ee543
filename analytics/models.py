"""The ledger: one row per proxied call, plus hourly rollups that dashboards read.

Rollups are upserted in the same transaction as each batch of events
(analytics.services.usage_record_batch), so aggregates are always as fresh as
the events themselves and no dashboard scans raw events.
"""

from __future__ import annotations

from django.db import models

from accounts.models import ApiKey, Organization

COST_DIGITS = 20
COST_PLACES = 10  # money is Decimal with 10 places; never float


class Status(models.TextChoices):
    SUCCESS = "success"
    CLIENT_ERROR = "client_error"
    UPSTREAM_ERROR = "upstream_error"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


class UsageEvent(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Proxy-assigned id, returned to the client as x-aispendtrack-request-id;
    # unique so a replayed spool file never inserts an event twice.
    request_id = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField()
    provider = models.CharField(max_length=64)
    endpoint = models.CharField(max_length=200)
    model = models.CharField(max_length=200, blank=True, default="")
    response_model = models.CharField(max_length=200, blank=True, default="")
    customer_id = models.CharField(max_length=256, blank=True, default="")
    feature = models.CharField(max_length=256, blank=True, default="")
    trace_id = models.CharField(max_length=256, blank=True, default="")
    environment = models.CharField(max_length=256, blank=True, default="")
    properties = models.JSONField(default=dict, blank=True)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cache_write_1h_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    input_audio_tokens = models.BigIntegerField(default=0)
    output_audio_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=COST_DIGITS, decimal_places=COST_PLACES, default=0)
    priced = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    ttfb_ms = models.PositiveIntegerField(null=True, blank=True)
    streamed = models.BooleanField(default=False)
    upstream_request_id = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        indexes = [
            # Record lists, newest first, per organization (and the retention purge).
            models.Index(fields=["organization", "-created_at"], name="ue_org_created"),
            models.Index(fields=["organization", "trace_id"], name="ue_org_trace"),
            models.Index(fields=["organization", "customer_id", "-created_at"], name="ue_org_cust"),
            # "Most expensive requests" of a period: walk costs downwards, stop at N.
            models.Index(fields=["organization", "-cost"], name="ue_org_cost"),
            # Re-pricing finds unpriced events by model.
            models.Index(fields=["priced", "model"], name="ue_priced_model"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} {self.status}"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class RollupCounters(models.Model):
    """The sums every hourly rollup keeps (analytics.services.COUNTER_FIELDS)."""

    calls = models.BigIntegerField(default=0)
    unpriced_calls = models.BigIntegerField(default=0)
    streamed_calls = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cache_write_1h_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=COST_DIGITS, decimal_places=COST_PLACES, default=0)
    latency_ms_sum = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class HourlyRollup(RollupCounters):
    """Sums of events per (organization, hour, dimensions). Upserted, never scanned raw."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()  # UTC, truncated to the hour
    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    customer_id = models.CharField(max_length=256)
    feature = models.CharField(max_length=256)
    environment = models.CharField(max_length=256)
    api_key_id = models.BigIntegerField(default=0)  # 0: no key (kept non-null for the unique key)
    status = models.CharField(max_length=16, choices=Status.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "organization",
                    "hour",
                    "provider",
                    "model",
                    "customer_id",
                    "feature",
                    "environment",
                    "api_key_id",
                    "status",
                ],
                name="uniq_rollup_bucket",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "hour"], name="ru_org_hour"),
            # Customer detail pages and "does this customer exist" (404) checks.
            models.Index(fields=["organization", "customer_id", "hour"], name="ru_org_cust_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.hour:%Y-%m-%d %H}h {self.model}"


class HourlyCoarseRollup(RollupCounters):
    """HourlyRollup without the customer dimension, upserted in the same transaction.

    A long tail of customers makes HourlyRollup nearly as big as the events
    (each customer × feature × model × status seen in an hour is a row); without
    customer_id an hour has a few hundred rows at most. Every aggregate that
    neither groups nor filters by customer reads this table (analytics.selectors).
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()  # UTC, truncated to the hour
    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    feature = models.CharField(max_length=256)
    environment = models.CharField(max_length=256)
    api_key_id = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices)

    class Meta:
        constraints = [
            # Its index (organization, hour, …) serves every period scan.
            models.UniqueConstraint(
                fields=[
                    "organization",
                    "hour",
                    "provider",
                    "model",
                    "feature",
                    "environment",
                    "api_key_id",
                    "status",
                ],
                name="uniq_coarse_rollup_bucket",
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.hour:%Y-%m-%d %H}h {self.model} (all customers)"


class DailyCustomerRollup(models.Model):
    """Per customer per UTC day: what "top customers" and the customers list read.

    A long tail of customers keeps the hourly rollup nearly as large as the
    events; this table is bounded by customers × days instead, whatever the
    call volume. Periods in an org's local days read whole UTC days here and
    their partial first/last UTC day from HourlyRollup, so results stay exact
    (analytics.selectors.spend). Upserted with every batch, like the others.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()  # UTC
    customer_id = models.CharField(max_length=256)
    calls = models.BigIntegerField(default=0)
    unpriced_calls = models.BigIntegerField(default=0)
    streamed_calls = models.BigIntegerField(default=0)
    error_calls = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=COST_DIGITS, decimal_places=COST_PLACES, default=0)
    latency_ms_sum = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            # Its index (organization, day, customer_id) serves every period scan.
            models.UniqueConstraint(
                fields=["organization", "day", "customer_id"], name="uniq_customer_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.day} {self.customer_id or '(untagged)'}"
