from django.contrib import admin

from alerts.models import AlertChannel, AlertEvent, AlertSettings, Budget, Delivery


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "scope", "scope_value", "period", "amount", "action")
    list_filter = ("scope", "period", "action", "is_active")
    search_fields = ("name", "scope_value", "organization__name", "organization__slug")
    raw_id_fields = ("organization", "created_by")
    filter_horizontal = ("channels",)


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "kind", "target", "is_active", "is_default")
    list_filter = ("kind", "is_active")
    search_fields = ("name", "target", "organization__name", "organization__slug")
    raw_id_fields = ("organization",)
    exclude = ("secret",)  # a signing key is shown to the tenant, never in lists


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    list_display = (
        "kind",
        "organization",
        "budget",
        "period_start",
        "threshold",
        "spend",
        "fired_at",
    )
    list_filter = ("kind",)
    search_fields = ("uid", "budget__name", "organization__name", "dedup_key")
    raw_id_fields = ("organization", "budget")
    date_hierarchy = "fired_at"


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("event", "channel", "organization", "status", "attempts", "last_status_code")
    list_filter = ("status", "channel__kind")
    search_fields = ("event__uid", "channel__name", "organization__name", "last_error")
    raw_id_fields = ("organization", "event", "channel")


@admin.register(AlertSettings)
class AlertSettingsAdmin(admin.ModelAdmin):
    list_display = ("organization", "anomaly_floor")
    search_fields = ("organization__name", "organization__slug")
    raw_id_fields = ("organization",)
