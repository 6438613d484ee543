"""Budgets, alert channels, the alerts they raised, and their deliveries.

Every row is a tenant row (non-null, indexed `organization`). Business logic
lives in services.py / selectors.py; the proxy's hard cap in proxy/budgets.py.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from accounts.models import Organization

AMOUNT_DIGITS = 20
AMOUNT_PLACES = 10

DEFAULT_THRESHOLDS = (50, 75, 90, 100)


def default_thresholds() -> list[int]:
    return list(DEFAULT_THRESHOLDS)


class BudgetScope(models.TextChoices):
    ORGANIZATION = "organization", "Whole organization"
    CUSTOMER = "customer", "Customer"
    FEATURE = "feature", "Feature"
    API_KEY = "api_key", "API key"
    ENVIRONMENT = "environment", "Environment"


class BudgetPeriod(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week (ISO, Monday first)"
    MONTH = "month", "Month"


class BudgetAction(models.TextChoices):
    ALERT = "alert", "Alert only"
    BLOCK = "block", "Alert and block calls (hard cap)"


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    SLACK = "slack", "Slack"
    WEBHOOK = "webhook", "Webhook"


class AlertChannel(models.Model):
    """Where alerts go. `target`: comma-separated addresses (email), an incoming
    webhook URL (slack) or an HTTPS URL (webhook, signed with `secret`)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="alert_channels"
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    target = models.TextField()
    # Webhooks only: the HMAC key of AiSpendTrack-Signature (shown to the org's managers).
    secret = models.CharField(max_length=80, blank=True, default="")
    # Default channels also receive anomaly alerts.
    is_default = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Budget(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="budgets")
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=16, choices=BudgetScope.choices)
    # Empty for organization; else the customer id / feature / key id / environment.
    scope_value = models.CharField(max_length=256, blank=True, default="")
    period = models.CharField(max_length=8, choices=BudgetPeriod.choices)
    amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    thresholds = models.JSONField(default=default_thresholds)  # percentages, ascending
    action = models.CharField(max_length=8, choices=BudgetAction.choices)
    channels = models.ManyToManyField(AlertChannel, blank=True, related_name="budgets")
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["organization", "is_active"], name="budget_org_active")]

    def __str__(self) -> str:
        return f"{self.name} ({self.period}, {self.amount} USD)"


class AlertEvent(models.Model):
    """One alert raised: a budget threshold crossed in a period, or an anomaly.

    A budget threshold fires once per period: (budget, period_start, threshold)
    is unique, so a second evaluation cannot insert it again. Anomalies have no
    budget; (organization, kind, scope, day) dedups them (`dedup_key`).
    """

    class Kind(models.TextChoices):
        THRESHOLD = "budget.threshold_crossed"
        EXCEEDED = "budget.exceeded"
        ANOMALY = "anomaly.detected"
        TEST = "test"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    # The webhook's event id: deliveries of one event share it (idempotency for receivers).
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    budget = models.ForeignKey(
        Budget, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    period_start = models.DateField(null=True, blank=True)  # local, org zone
    threshold = models.PositiveSmallIntegerField(null=True, blank=True)
    spend = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, default=0)
    # Anomalies (and tests): a unique key per organization, e.g. "customer:c1:2026-03-01".
    dedup_key = models.CharField(max_length=400, blank=True, default="")
    data = models.JSONField(default=dict)  # the webhook's `data`
    fired_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start", "threshold"],
                condition=models.Q(budget__isnull=False),
                name="uniq_alert_budget_period_threshold",
            ),
            models.UniqueConstraint(
                fields=["organization", "dedup_key"],
                condition=~models.Q(dedup_key=""),
                name="uniq_alert_dedup_key",
            ),
        ]
        indexes = [models.Index(fields=["organization", "-fired_at"], name="alert_org_fired")]

    def __str__(self) -> str:
        return f"{self.kind} {self.fired_at:%Y-%m-%d %H:%M}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after the retry window


class Delivery(models.Model):
    """One event sent to one channel; retried with backoff until delivered or 24 h pass."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    event = models.ForeignKey(AlertEvent, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            # Idempotent by event: one delivery per event and channel.
            models.UniqueConstraint(fields=["event", "channel"], name="uniq_delivery_event_channel")
        ]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="delivery_org_created"),
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.channel} ({self.status})"


class AlertSettings(models.Model):
    """An organization's alerting preferences (a row only once changed)."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="alert_settings"
    )
    # Anomaly alerts fire only when today's spend of a scope is above this (USD);
    # null: AISPENDTRACK_ANOMALY_FLOOR.
    anomaly_floor = models.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, null=True, blank=True
    )

    class Meta:
        verbose_name_plural = "alert settings"

    def __str__(self) -> str:
        return f"alert settings of {self.organization}"
