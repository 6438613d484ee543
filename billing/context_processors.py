from django.utils.functional import SimpleLazyObject

from billing.models import DataExport
from billing.selectors import billing_enabled, plan_effective, plan_usage


def plan(request):
    """For every page of an organization: `plan` (the plan in force),
    `billing_on`, and `plan_usage` (counted only if a page shows it)."""
    organization = getattr(request, "organization", None)
    if organization is None:
        return {}
    return {
        "plan": plan_effective(organization=organization),
        "billing_on": billing_enabled(),
        "plan_usage": SimpleLazyObject(lambda: plan_usage(organization=organization)),
        "data_exports": SimpleLazyObject(
            lambda: list(DataExport.objects.filter(organization=organization)[:5])
        ),
    }
