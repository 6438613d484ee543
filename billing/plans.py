"""The plans of the issue's table, seeded by migration 0002 and re-created
when missing (a test database flushed between tests, a staff member deleting one)."""

from decimal import Decimal
from typing import Any

PLANS: list[dict[str, Any]] = [
    {
        "slug": "self-hosted",
        "name": "Self-hosted",
        "price_usd_month": None,
        "monthly_call_limit": None,
        "hourly_request_limit": None,
        "retention_days": None,
        "export": True,
        "api": True,
        "alerts": True,
        "trial_days": 0,
    },
    {
        "slug": "free",
        "name": "Free",
        "price_usd_month": Decimal("0.00"),
        "monthly_call_limit": 10_000,
        "hourly_request_limit": 1_000,
        "retention_days": 7,
        "export": False,
        "api": False,
        "alerts": False,
        "trial_days": 0,
    },
    {
        "slug": "pro",
        "name": "Pro",
        "price_usd_month": Decimal("149.00"),
        "monthly_call_limit": None,
        "hourly_request_limit": 10_000,
        "retention_days": 90,
        "export": True,
        "api": True,
        "alerts": True,
        "trial_days": 14,
    },
    {
        # Custom: staff set the limits per customer (up to 365 days of retention).
        "slug": "enterprise",
        "name": "Enterprise",
        "price_usd_month": None,
        "monthly_call_limit": None,
        "hourly_request_limit": None,
        "retention_days": 365,
        "export": True,
        "api": True,
        "alerts": True,
        "trial_days": 0,
    },
]

SEED = {values["slug"]: values for values in PLANS}
