"""The ledger: one row per proxied call, plus the rollups that dashboards read.

HourlyRollup is upserted in the same transaction as each batch of events
(analytics.services.usage_record_batch), with a RollupDelta row per bucket and
input band; the derived tables (coarse, daily, per customer, the simulator's
shapes) are folded from those deltas every few seconds (analytics.fold), so
no dashboard scans raw events. Each table's key and counters are read off
these declarations (analytics.rollups), never listed again elsewhere.
"""

from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import F

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


# The constraint that makes a replayed batch harmless (analytics.services
# tells a replay from other refusals by its name).
REQUEST_ID_UNIQUE = "ue_request_id_unique"


class UsageEvent(models.Model):
    # No database constraints: PostgreSQL's check was a lookup and a row lock
    # per event and key at commit; the ledger's write checks each batch's
    # organizations and keys once instead (analytics.services.owners_hold),
    # and the ORM still cascades a deletion (CASCADE, SET_NULL).
    # Not indexed alone: every ue_org_* index below starts with it.
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    # Indexed: a key's deletion unsets its events (SET_NULL) by this index.
    api_key = models.ForeignKey(
        ApiKey,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    # Proxy-assigned id, returned to the client as x-aispendtrack-request-id;
    # unique (REQUEST_ID_UNIQUE) so a replayed batch never inserts an event twice.
    request_id = models.CharField(max_length=40)
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
        # A constraint rather than `unique=True`: no second, LIKE-only index
        # (nothing searches request ids by prefix); every index costs ingest.
        constraints = [models.UniqueConstraint(fields=["request_id"], name=REQUEST_ID_UNIQUE)]
        indexes = [
            # Record lists, newest first, per organization (and the retention purge).
            models.Index(fields=["organization", "-created_at"], name="ue_org_created"),
            # One trace's calls, and the traces page's search by id prefix
            # (LIKE 'p%'; pattern ops make that an index range in any collation).
            models.Index(
                fields=["organization", "trace_id"],
                name="ue_org_trace",
                opclasses=["int8_ops", "varchar_pattern_ops"],
            ),
            models.Index(fields=["organization", "customer_id", "-created_at"], name="ue_org_cust"),
            # "Most expensive requests" of a period: walk costs downwards, stop at N.
            models.Index(fields=["organization", "-cost"], name="ue_org_cost"),
            # The requests table sorted by a column (analytics.selectors.events
            # REQUEST_SORTS): each order and its reverse is one scan of these.
            models.Index(fields=["organization", "model", "-created_at"], name="ue_org_model"),
            models.Index(fields=["organization", "feature", "-created_at"], name="ue_org_feature"),
            # Carries latency_ms: the overview's latency sample under a status
            # filter (analytics.selectors.headline) is then an index-only scan,
            # not ~20,000 heap pages read at random (10M events: 104 → 5 ms).
            models.Index(
                fields=["organization", "status", "-created_at"],
                name="ue_org_status",
                include=["latency_ms"],
            ),
            models.Index(
                F("organization"),
                F("input_tokens") + F("output_tokens"),
                F("created_at").desc(),
                name="ue_org_tokens",
            ),
            # Re-pricing walks the unpriced events by id; priced ones (nearly
            # all) cost this index nothing.
            models.Index(fields=["id"], condition=models.Q(priced=False), name="ue_unpriced"),
            # The filter bar's latency range (issue 12): slow calls of a period.
            models.Index(fields=["organization", "latency_ms"], name="ue_org_latency"),
            # The filter bar's x-property-* filters: JSON containment (@>), PostgreSQL
            # only (migration 0018 skips it elsewhere); ANDed with ue_org_created.
            GinIndex(fields=["properties"], opclasses=["jsonb_path_ops"], name="ue_properties"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} {self.status}"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class MatchedEvent(models.Model):
    """The events a page's event-only filter matches, copied once per page into
    a temporary table of the page's database session (analytics.selectors.matched)
    so that its dozen breakdowns read those rows, not the ledger, each time.
    Not managed: no migration creates it. Its fields are UsageEvent's of the
    same names (tests/analytics/test_matched.py holds them equal): what the
    totals, breakdowns, daily series and latency samples read."""

    id = models.BigIntegerField(primary_key=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )
    created_at = models.DateTimeField()
    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    customer_id = models.CharField(max_length=256)
    feature = models.CharField(max_length=256)
    environment = models.CharField(max_length=256)
    input_tokens = models.BigIntegerField()
    output_tokens = models.BigIntegerField()
    cached_input_tokens = models.BigIntegerField()
    reasoning_tokens = models.BigIntegerField()
    cost = models.DecimalField(max_digits=COST_DIGITS, decimal_places=COST_PLACES)
    priced = models.BooleanField()
    status = models.CharField(max_length=16, choices=Status.choices)
    latency_ms = models.PositiveIntegerField()
    streamed = models.BooleanField()

    class Meta:
        managed = False
        db_table = "analytics_matched_event"

    def __str__(self) -> str:
        return f"matched {self.pk}"


# The sums every rollup keeps (RollupCounters' fields).
ROLLUP_COUNTERS = (
    "calls",
    "unpriced_calls",
    "streamed_calls",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "cost",
    "latency_ms_sum",
)


class RollupCounters(models.Model):
    """The sums every hourly rollup keeps (ROLLUP_COUNTERS)."""

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


class CoarseDimensions(models.Model):
    """The dimensions every hourly and daily rollup is keyed by (with a time;
    the fine hourly tables add the customer). THE place to add a dimension:
    a field here reaches HourlyRollup, RollupDelta, HourlyCoarseRollup and
    DailyCoarseRollup, their unique keys (`rollup_unique`), the ingest bucket
    key, the fold's SQL and its SQLite path (analytics.rollups derives them).
    The events must carry the same field (UsageEvent)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    feature = models.CharField(max_length=256)
    environment = models.CharField(max_length=256)
    api_key_id = models.BigIntegerField(default=0)  # 0: no key (kept non-null for the unique key)
    status = models.CharField(max_length=16, choices=Status.choices)

    class Meta:
        abstract = True


COARSE_DIMENSIONS = tuple(field.name for field in CoarseDimensions._meta.local_fields)


def rollup_unique(
    time: str, *extra: str, name: str, lead: tuple[str, ...] = ()
) -> models.UniqueConstraint:
    """A rollup table's key: organization, `lead` dimensions, its time column,
    every coarse dimension (declaration order), then `extra` dimensions. The
    unique index serves the upserts and every (organization, lead, time
    range) scan."""
    organization, *rest = COARSE_DIMENSIONS
    return models.UniqueConstraint(fields=[organization, *lead, time, *rest, *extra], name=name)


class HourlyRollup(RollupCounters, CoarseDimensions):
    """Sums of events per (organization, hour, dimensions, customer). Written
    with each ledger batch, in its transaction; never scanned raw."""

    hour = models.DateTimeField()  # UTC, truncated to the hour
    customer_id = models.CharField(max_length=256)

    class Meta:
        constraints = [rollup_unique("hour", "customer_id", name="uniq_rollup_bucket")]
        indexes = [
            models.Index(fields=["organization", "hour"], name="ru_org_hour"),
            # Customer detail pages and "does this customer exist" (404) checks.
            models.Index(fields=["organization", "customer_id", "hour"], name="ru_org_cust_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.hour:%Y-%m-%d %H}h {self.model}"


class RollupDelta(RollupCounters, CoarseDimensions):
    """The delta log: what each ledger batch (or re-pricing) added to
    HourlyRollup, not yet added to the derived tables.

    Appended in the same transaction as the HourlyRollup change; the fold
    (analytics.fold) deletes rows and adds them to the derived tables in one
    transaction, so each delta is counted there exactly once whatever crashes
    when."""

    # No database constraint: checking it costs each batch a lookup per delta
    # row, and the log is transient (the ORM still cascades an organization's
    # deletion; the fold drops a deleted organization's deltas).
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    hour = models.DateTimeField()
    customer_id = models.CharField(max_length=256)
    # What the batch added to UsageShapeRollup (the fold adds it there too):
    # the calls' input band, the token kinds HourlyRollup does not keep and the
    # largest input. NULL band: the delta changes no shape (re-pricing changes
    # costs only; deltas written before the shapes moved to the fold).
    band = models.PositiveSmallIntegerField(null=True)
    input_audio_tokens = models.BigIntegerField(default=0)
    output_audio_tokens = models.BigIntegerField(default=0)
    max_input_tokens = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"delta {self.pk} {self.organization_id} {self.hour:%Y-%m-%d %H}h"


class HourlyCoarseRollup(RollupCounters, CoarseDimensions):
    """HourlyRollup without the customer dimension (folded from the deltas).

    A long tail of customers makes HourlyRollup nearly as big as the events
    (each customer × feature × model × status seen in an hour is a row); without
    customer_id an hour has a few hundred rows at most. Every aggregate that
    neither groups nor filters by customer reads this table (analytics.selectors).
    """

    hour = models.DateTimeField()  # UTC, truncated to the hour

    class Meta:
        constraints = [rollup_unique("hour", name="uniq_coarse_rollup_bucket")]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.hour:%Y-%m-%d %H}h {self.model} (all customers)"


class DailyCoarseRollup(RollupCounters, CoarseDimensions):
    """HourlyCoarseRollup summed per local day of the organization's zone.

    `day` is the local date the rollup hour starts on in
    `Organization.rollup_timezone`, the same rule the hourly selectors group by,
    so a period of local days is an exact range of rows here. A month of a busy
    organization is ~25× fewer rows than hourly. Folded from the deltas;
    rebuilt from the hourly rollups when the zone changes (analytics.fold).
    """

    day = models.DateField()  # local, in organization.rollup_timezone

    class Meta:
        constraints = [rollup_unique("day", name="uniq_daily_coarse_bucket")]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.day} {self.model} (all customers)"


class ModelDayDimensions(models.Model):
    """The daily tables cut to provider, model and feature (no environment,
    key or status): they count error calls themselves, as status is gone."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()  # local, in organization.rollup_timezone
    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    feature = models.CharField(max_length=256)
    error_calls = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


def model_day_unique(*, name: str, lead: tuple[str, ...] = ()) -> models.UniqueConstraint:
    """A ModelDayDimensions table's key: organization, `lead`, day, provider, model, feature."""
    return models.UniqueConstraint(
        fields=["organization", *lead, "day", "provider", "model", "feature"], name=name
    )


class DailyModelRollup(RollupCounters, ModelDayDimensions):
    """DailyCoarseRollup without environment, key and status: a few dozen rows
    a day, what the overview and the summaries read when they neither filter
    nor group by those (analytics.selectors._common.rollup_rows)."""

    class Meta:
        constraints = [model_day_unique(name="uniq_daily_model_bucket")]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.day} {self.model} {self.feature or '(untagged)'}"


# --- x-property-* rollups (issue 12: the filter bar's property=name:value) ------

# A property key rolls up while the organization has recorded at most this many
# distinct values for it, each at most PROPERTY_VALUE_ROLLED characters long.
# The first key past either is "capped" for good (PropertyKey.capped): its rows
# leave the property rollups and its filters read the events, so a key like a
# request id costs the rollups at most this many values once.
PROPERTY_VALUES_ROLLED = 100
PROPERTY_VALUE_ROLLED = 256
# What a property rollup row is keyed by besides the coarse dimensions: the
# (name, value) pair, first, so one pair's rows of a period are one index range.
PROPERTY_LEAD = ("name", "value")


class PropertyDimensions(models.Model):
    name = models.CharField(max_length=64)  # the part after x-property-
    value = models.CharField(max_length=PROPERTY_VALUE_ROLLED)

    class Meta:
        abstract = True


class PropertyHourlyRollup(RollupCounters, CoarseDimensions, PropertyDimensions):
    """HourlyCoarseRollup per x-property-* (name, value) pair: each call counts
    once under each property it carries. Folded from PropertyRollupDelta
    (analytics.properties); only keys that are not capped (PropertyKey)."""

    hour = models.DateTimeField()  # UTC, truncated to the hour

    class Meta:
        constraints = [rollup_unique("hour", lead=PROPERTY_LEAD, name="uniq_property_hourly")]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.name}={self.value} {self.hour:%Y-%m-%d %H}h"


class PropertyDailyRollup(RollupCounters, CoarseDimensions, PropertyDimensions):
    """PropertyHourlyRollup per local day of the organization's zone (the rule
    of DailyCoarseRollup; re-keyed with it when the zone changes)."""

    day = models.DateField()  # local, in organization.rollup_timezone

    class Meta:
        constraints = [rollup_unique("day", lead=PROPERTY_LEAD, name="uniq_property_daily")]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.name}={self.value} {self.day}"


class PropertyDailyModelRollup(RollupCounters, PropertyDimensions, ModelDayDimensions):
    """PropertyDailyRollup without environment, key and status (what
    DailyModelRollup is to DailyCoarseRollup): a pair's month is a row per day
    and model/feature (10M events: 496 rows instead of 6,042), what the overview
    and the summaries read under a property filter when they neither filter nor
    group by those (analytics.selectors._common.property_rows). Folded and
    re-keyed with PropertyDailyRollup, under the same guard
    (analytics.properties)."""

    class Meta:
        constraints = [model_day_unique(lead=PROPERTY_LEAD, name="uniq_property_daily_model")]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.name}={self.value} {self.day} {self.model}"


# CustomerRollup's dimension for a property key: "x-property-<name>", the
# header the calls carried it in (analytics.properties).
PROPERTY_CUSTOMER_PREFIX = "x-property-"


class PropertyCustomerHourlyRollup(RollupCounters, CoarseDimensions, PropertyDimensions):
    """HourlyRollup per x-property-* pair (customer included), keyed pair and
    customer first: what one customer's pages read under a property filter
    (one index range), and what CustomerRollup's property rows (dimension
    "x-property-<name>") are re-keyed from when the zone changes. Folded from
    PropertyRollupDelta with the other property rollups, under the same guard."""

    hour = models.DateTimeField()  # UTC, truncated to the hour
    customer_id = models.CharField(max_length=256)

    class Meta:
        constraints = [
            rollup_unique(
                "hour", lead=(*PROPERTY_LEAD, "customer_id"), name="uniq_property_customer_hourly"
            )
        ]

    def __str__(self) -> str:
        pair = f"{self.name}={self.value}"
        return f"{self.organization_id} {pair} {self.customer_id} {self.hour:%Y-%m-%d %H}h"


class PropertyCustomerDailyRollup(RollupCounters, CoarseDimensions, PropertyDimensions):
    """PropertyCustomerHourlyRollup per local day (the rule of DailyCoarseRollup;
    re-keyed from the hourly rows when the zone changes): a customer's month
    under a property is ~30 row groups instead of ~720."""

    day = models.DateField()  # local, in organization.rollup_timezone
    customer_id = models.CharField(max_length=256)

    class Meta:
        constraints = [
            rollup_unique(
                "day", lead=(*PROPERTY_LEAD, "customer_id"), name="uniq_property_customer_daily"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.name}={self.value} {self.customer_id} {self.day}"


class PropertyRollupDelta(RollupCounters, CoarseDimensions, PropertyDimensions):
    """The property rollups' delta log: what a ledger batch (or re-pricing)
    added per (property pair, hourly bucket with the customer), appended in
    its transaction and folded like RollupDelta (analytics.properties)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    hour = models.DateTimeField()
    # A value longer than the rollups keep is logged clipped and caps its key.
    value = models.CharField(max_length=PROPERTY_VALUE_ROLLED + 1)
    # NULL: logged before migration 0020 by a writer that did not know the
    # customer; such deltas reach the coarse property tables only (the
    # migration built the customer rows from the events instead).
    customer_id = models.CharField(max_length=256, null=True)  # noqa: DJ001

    def __str__(self) -> str:
        return f"property delta {self.pk} {self.organization_id} {self.name}={self.value}"


class PropertyKey(models.Model):
    """An x-property-* name an organization has recorded, and whether it rolls up.

    `values`: distinct values recorded while it rolled up (PropertyValue rows).
    `capped`: it went past PROPERTY_VALUES_ROLLED values (or a value past
    PROPERTY_VALUE_ROLLED characters); its filters read the events from then on."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=64)
    values = models.IntegerField(default=0)
    capped = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="uniq_property_key")
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.name}{' (capped)' if self.capped else ''}"


class PropertyValue(models.Model):
    """A value of a rolled-up property key (at most PROPERTY_VALUES_ROLLED a key):
    what the guard counts, and the filter bar's suggestions."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=64)
    value = models.CharField(max_length=PROPERTY_VALUE_ROLLED + 1)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name", "value"], name="uniq_property_value"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.name}={self.value}"


class Span(models.TextChoices):
    DAY = "d"
    WEEK = "w"  # ISO week, Monday first
    MONTH = "m"


# The dimensions a customer's totals are split by (besides the totals, dimension "").
# Status: the customers of a status (the filter bar's status=…) rank from these
# rows instead of summing a month of HourlyRollup (1.3 s at 10M events).
CUSTOMER_DIMENSIONS = ("model", "feature", "status")


class CustomerRollup(models.Model):
    """Per customer per local day, week and month: what customer rankings read.

    Ranking a long tail of customers must read a row per customer per stored
    interval; storing weeks and months as well as days lets a 30-day period be
    ~6 intervals instead of 30 (analytics.intervals.period_spans). Each interval
    holds the customer's totals (dimension "") and its split by model, by
    feature and by status (dimension "model"/"feature"/"status", `value` the
    model, feature or status), which the model and feature pages and the
    status filter rank customers by, and by each rolled-up x-property-* pair
    (dimension "x-property-<name>", `value` its value), which property-filtered
    customer rankings read. Folded from the delta logs.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    span = models.CharField(max_length=1, choices=Span.choices)
    start = models.DateField()  # local, in organization.rollup_timezone
    # "", "model", "feature" or "x-property-<name>" (PROPERTY_CUSTOMER_PREFIX)
    dimension = models.CharField(max_length=80)
    value = models.CharField(max_length=256)
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
            # Rankings: (organization, dimension, value, span, start) ranges.
            models.UniqueConstraint(
                fields=["organization", "dimension", "value", "span", "start", "customer_id"],
                name="uniq_customer_span",
            )
        ]
        indexes = [
            # One customer's page: its totals, models and features per interval.
            models.Index(
                fields=["organization", "customer_id", "dimension", "span", "start"],
                name="cr_org_cust",
            ),
            # Each interval's biggest spenders first, overall or of one model,
            # feature or status (analytics.selectors.top); with the customer,
            # every customer's cost of an interval is an index-only scan
            # (analytics.selectors._common.customer_costs).
            models.Index(
                fields=[
                    "organization",
                    "dimension",
                    "value",
                    "span",
                    "start",
                    "-cost",
                    "customer_id",
                ],
                name="cr_span_cost",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.span}{self.start} {self.customer_id or '(untagged)'}"


# Input-size bands of UsageShapeRollup: a call is in band b when its input
# exceeds exactly b of these edges. They are every context-tier threshold in
# genai-prices' data ("above N input tokens every token uses the tier's
# rates"), so a tiered price applies to whole bands and re-pricing the bands is
# exact. A staff tier at another threshold is priced from the band's lower edge.
INPUT_BAND_EDGES = (32_000, 100_000, 128_000, 199_999, 200_000, 256_000, 272_000, 512_000, 524_288)
# The token sums UsageShapeRollup keeps: everything the cost engine prices.
SHAPE_TOKENS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
)


class UsageShapeRollup(models.Model):
    """Token sums per (organization, UTC hour, provider, model, feature,
    customer, input band), with the largest input of a single call: what the
    cost simulator re-prices (analytics.simulator).

    Every token kind the cost engine prices is here (audio too), split by
    input band so context tiers re-price exactly, and `max_input_tokens` tells
    whether another model's context window takes the workload. Tokens never
    change after a call is recorded (re-pricing changes costs only), so this
    table has no cost and re-pricing never touches it; hourly keys answer any
    zone's local days without a rebuild.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()  # UTC, truncated to the hour
    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    feature = models.CharField(max_length=256)
    customer_id = models.CharField(max_length=256)
    band = models.PositiveSmallIntegerField()  # index into INPUT_BAND_EDGES (0: up to the first)
    calls = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cache_write_1h_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    input_audio_tokens = models.BigIntegerField(default=0)
    output_audio_tokens = models.BigIntegerField(default=0)
    max_input_tokens = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "organization",
                    "hour",
                    "provider",
                    "model",
                    "feature",
                    "customer_id",
                    "band",
                ],
                name="uniq_usage_shape",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "feature", "hour"], name="us_org_feature"),
            models.Index(fields=["organization", "customer_id", "hour"], name="us_org_cust"),
            models.Index(fields=["organization", "model", "hour"], name="us_org_model"),
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.hour:%Y-%m-%d %H}h {self.model} band {self.band}"


class RefusalRollup(models.Model):
    """Calls a proxy gate refused, per organization, UTC hour and reason.

    Counters, not ledger events: a client hammering a closed budget or an
    exhausted plan adds to one row an hour instead of flooding the ledger.
    `reason` is `proxy.gates.Refusal.reason` ("budget", "plan"). Written by
    the proxy's RefusalCounter (proxy/refusals.py), a few rows every few seconds.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()  # UTC, truncated to the hour
    reason = models.CharField(max_length=32)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "hour", "reason"], name="uniq_refusal_bucket"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.hour:%Y-%m-%d %H}h {self.reason}: {self.count}"


class RevenueSource(models.TextChoices):
    API = "api", "REST API"
    CSV = "csv", "CSV upload"
    STRIPE = "stripe", "Stripe"


class RevenueEntry(models.Model):
    """What a customer paid for a period (USD), spread evenly over its days.

    `customer_id` is the same string calls carry in `x-customer-id`.
    `external_id` is unique per organization and source, so importing the same
    invoice again replaces it and never counts it twice (analytics.revenue).
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    customer_id = models.CharField(max_length=256)
    amount = models.DecimalField(max_digits=COST_DIGITS, decimal_places=COST_PLACES)
    period_start = models.DateField()
    period_end = models.DateField()  # inclusive
    source = models.CharField(max_length=8, choices=RevenueSource.choices)
    external_id = models.CharField(max_length=256)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "source", "external_id"], name="uniq_revenue_external"
            )
        ]
        indexes = [
            # Revenue of a period: entries ending on or after its first day.
            models.Index(fields=["organization", "period_end"], name="rev_org_end"),
            models.Index(fields=["organization", "customer_id", "period_end"], name="rev_org_cust"),
        ]
        ordering = ["-period_start", "customer_id", "pk"]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.amount} {self.period_start}–{self.period_end}"

    @property
    def days(self) -> int:
        return (self.period_end - self.period_start).days + 1


class RevenueSettings(models.Model):
    """An organization's margin threshold and its Stripe revenue sync (one row, optional).

    The Stripe key is a restricted key (read access to customers and invoices),
    stored encrypted with a Fernet key derived from SECRET_KEY (analytics.stripe_sync);
    only its last 4 characters are ever shown.
    """

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="revenue_settings"
    )
    # Customers below this margin % are "thin" (the customers table's filter).
    thin_margin_percent = models.DecimalField(max_digits=5, decimal_places=2, default=20)
    stripe_key_encrypted = models.TextField(blank=True, default="")
    stripe_key_last4 = models.CharField(max_length=4, blank=True, default="")
    # The Stripe customer metadata key that holds our customer id.
    stripe_metadata_key = models.CharField(
        max_length=40, blank=True, default="aispendtrack_customer_id"
    )
    stripe_synced_at = models.DateTimeField(null=True, blank=True)
    stripe_sync_error = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"revenue settings of {self.organization_id}"


class RepriceStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class RepriceRun(models.Model):
    """One background re-pricing of an organization's unpriced calls, started by
    saving a price (analytics.repricing.reprice_after_price_saved). The pages'
    banner reads the newest one, so "re-pricing N calls…" and then "done"
    survive a reload and show in every tab of the organization."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="reprice_runs"
    )
    label = models.CharField(max_length=200)  # what was saved: a model's name
    model_names = models.JSONField(default=list)  # the event models it re-prices
    calls = models.PositiveIntegerField(default=0)  # unpriced calls it expects to price
    repriced = models.PositiveIntegerField(default=0)  # calls it changed
    status = models.CharField(
        max_length=8, choices=RepriceStatus.choices, default=RepriceStatus.QUEUED
    )
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["organization", "-id"], name="rr_org_newest")]

    def __str__(self) -> str:
        return f"re-pricing {self.label} for {self.organization_id}: {self.status}"
