from django.contrib import admin

from billing.models import Plan, StripeEvent, Subscription


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "slug",
        "price_usd_month",
        "monthly_call_limit",
        "hourly_request_limit",
        "retention_days",
        "export",
        "api",
        "alerts",
        "trial_days",
    )


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    """Staff change an organization's plan here (e.g. Enterprise with custom limits)."""

    list_display = ("organization", "plan", "status", "current_period_end", "cancel_at_period_end")
    list_filter = ("plan", "status")
    search_fields = ("organization__name", "organization__slug", "stripe_customer_id")
    list_select_related = ("organization", "plan")
    raw_id_fields = ("organization",)
    readonly_fields = ("stripe_customer_id", "stripe_subscription_id", "updated_at")


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):
    list_display = ("event_id", "type", "created", "processed_at", "organization")
    list_filter = ("type",)
    search_fields = ("event_id",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
