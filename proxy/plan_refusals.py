"""The plan-limit gate's 429s: which limit, when it resets, what to do."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from billing.selectors import OrgLimits
from proxy.gates import Refusal


def hourly_refusal(limits: OrgLimits, limit: int, now: float, reset: float) -> Refusal:
    retry_after = max(1, math.ceil(reset - now))
    at = datetime.fromtimestamp(reset, UTC)
    message = (
        f"Plan limit reached: your organization's {limits.plan_name} plan allows "
        f"{limit:,} proxy requests per hour and this hour's are used up. Requests are "
        f"accepted again at {at:%H:%M} UTC (in {retry_after} s). For a higher limit, "
        "upgrade your plan in AiSpendTrack under Settings → Billing."
    )
    return _refusal(message, retry_after, limit, reset, should_retry=True)


def monthly_refusal(limits: OrgLimits, limit: int, now: float, reset: float) -> Refusal:
    retry_after = max(1, math.ceil(reset - now))
    at = datetime.fromtimestamp(reset, UTC)
    message = (
        f"Plan limit reached: your organization's {limits.plan_name} plan includes "
        f"{limit:,} tracked calls per calendar month and this month's are used up. "
        f"Calls are accepted again on {at:%b} {at.day} at 00:00 UTC. To keep going now, "
        "upgrade to Pro (unlimited calls) in AiSpendTrack under Settings → Billing."
    )
    return _refusal(message, retry_after, limit, reset, should_retry=False)


def _refusal(
    message: str, retry_after: int, limit: int, reset: float, *, should_retry: bool
) -> Refusal:
    reset_at = datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Refusal(
        code="plan_limit_exceeded",
        message=message,
        retry_after=retry_after,
        should_retry=should_retry,
        headers=(
            ("x-aispendtrack-limit", str(limit)),
            ("x-aispendtrack-remaining", "0"),
            ("x-aispendtrack-reset", reset_at),
        ),
        reason="plan",
    )
