from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "analytics"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from accounts.models import Organization
        from analytics.daily import organization_saved

        post_save.connect(organization_saved, sender=Organization, dispatch_uid="rollup-zone")
