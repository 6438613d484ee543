"""Plans, each organization's subscription, and the Stripe events applied.

Which plan is in force (billing off, past-due grace, cancellation at period
end) is decided in `billing.selectors.plan_effective`, not here.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.models import Organization


class Plan(models.Model):
    """A plan's price, limits and features; editable in Django admin.

    A null limit means unlimited; a null retention keeps raw calls forever.
    """

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=80)
    price_usd_month = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, help_text="Empty: custom price."
    )
    stripe_price_id = models.CharField(
        max_length=120, blank=True, help_text="Empty for Pro: STRIPE_PRICE_PRO is used."
    )
    monthly_call_limit = models.BigIntegerField(
        null=True, blank=True, help_text="Tracked calls per calendar month (UTC); empty: unlimited."
    )
    hourly_request_limit = models.IntegerField(
        null=True, blank=True, help_text="Proxy requests per clock hour (UTC); empty: unlimited."
    )
    retention_days = models.IntegerField(
        null=True, blank=True, help_text="Raw calls older than this are purged; empty: forever."
    )
    export = models.BooleanField(default=False, help_text="CSV/JSON export.")
    api = models.BooleanField(default=False, help_text="The REST API.")
    alerts = models.BooleanField(default=False, help_text="Budgets' alerts and webhooks.")
    trial_days = models.IntegerField(default=0)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class SubscriptionStatus(models.TextChoices):
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"
    INCOMPLETE = "incomplete", "Incomplete"


class Subscription(models.Model):
    """One per organization: the plan it subscribed to and Stripe's view of it."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="subscription"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(
        max_length=16, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE
    )
    stripe_customer_id = models.CharField(max_length=120, blank=True, db_index=True)
    stripe_subscription_id = models.CharField(max_length=120, blank=True, db_index=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    trial_end = models.DateTimeField(null=True, blank=True)
    # When we first saw the subscription past due: its plan stays for 7 days from here.
    past_due_since = models.DateTimeField(null=True, blank=True)
    # Whether the organization ever subscribed through Stripe (no second trial).
    had_trial = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization__name"]

    def __str__(self) -> str:
        return f"{self.organization} on {self.plan} ({self.status})"


class StripeEvent(models.Model):
    """A Stripe webhook event applied once: a replay of the same id changes nothing."""

    event_id = models.CharField(max_length=120, unique=True)
    type = models.CharField(max_length=80)
    created = models.DateTimeField(help_text="Stripe's own timestamp of the event.")
    processed_at = models.DateTimeField(auto_now_add=True)
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-processed_at"]
        verbose_name = "Stripe event"

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}"


class DataExport(models.Model):
    """A zip of everything an organization holds, built by a Celery task and
    downloadable by its owners for EXPORT_HOURS."""

    class Status(models.TextChoices):
        PENDING = "pending", "Being prepared"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="data_exports"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    file_name = models.CharField(max_length=120, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"export of {self.organization} ({self.status})"


class OrganizationDeletion(models.Model):
    """An organization its owner deleted: keys revoked and members removed at
    once; every row of it is hard-deleted at `purge_after`."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="deletion"
    )
    requested_by_email = models.EmailField(blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    purge_after = models.DateTimeField()

    def __str__(self) -> str:
        return f"deletion of {self.organization} after {self.purge_after:%Y-%m-%d}"


class UsageNotice(models.Model):
    """A usage email sent: one per organization, month and threshold."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    month = models.DateField(help_text="The first day of the month (UTC).")
    threshold = models.PositiveSmallIntegerField(help_text="Percent of the monthly limit.")
    calls = models.BigIntegerField()
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "month", "threshold"], name="uniq_usage_notice"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization} {self.month:%Y-%m} {self.threshold}%"
