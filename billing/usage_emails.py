"""Usage emails: owners hear at 50 %, 75 % and 90 % of the monthly call limit,
once per threshold per month (UsageNotice rows make it so, even if the beat
task runs twice or on two hosts)."""

from __future__ import annotations

import logging
from datetime import datetime

from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Membership, Organization, Role
from billing import windows
from billing.models import UsageNotice
from billing.selectors import billing_enabled, calls_this_month_all_orgs, plan_effective

logger = logging.getLogger("aispendtrack.billing")

THRESHOLDS = (50, 75, 90)


def usage_emails_send_all_orgs(*, now: datetime | None = None) -> int:
    """Email owners of every organization past a threshold not yet announced this month."""
    if not billing_enabled():
        return 0
    now = now or timezone.now()
    month = windows.month_start(now).date()
    sent = 0
    for org_id, calls in calls_this_month_all_orgs(now=now).items():
        organization = Organization.objects.filter(pk=org_id).first()
        if organization is None:
            continue
        plan = plan_effective(organization=organization, now=now).plan
        limit = plan.monthly_call_limit
        if not limit:
            continue
        crossed = [t for t in THRESHOLDS if calls * 100 >= limit * t]
        if not crossed:
            continue
        done = set(
            UsageNotice.objects.filter(organization=organization, month=month).values_list(
                "threshold", flat=True
            )
        )
        todo = [t for t in crossed if t not in done]
        if not todo:
            continue
        # One email for the highest new threshold; every crossed one is marked sent.
        try:
            with transaction.atomic():
                for threshold in todo:
                    UsageNotice.objects.create(
                        organization=organization, month=month, threshold=threshold, calls=calls
                    )
                _send(organization, plan.name, calls, limit, max(todo), now)
        except IntegrityError:
            continue  # another run sent it
        sent += 1
    return sent


def _send(organization, plan_name: str, calls: int, limit: int, threshold: int, now) -> None:
    owners = list(
        Membership.objects.filter(organization=organization, role=Role.OWNER).values_list(
            "user__email", flat=True
        )
    )
    if not owners:
        return
    reset = windows.next_month(now)
    send_mail(
        subject=f"{organization.name} has used {threshold}% of its monthly AiSpendTrack calls",
        message=(
            f"{organization.name} has made {calls:,} tracked calls this month, {threshold}% of "
            f"the {limit:,} included in the {plan_name} plan. When the limit is reached the proxy "
            f"answers 429 until {reset:%b} 1 at 00:00 UTC. Upgrade to Pro (unlimited calls) in "
            "Settings → Billing."
        ),
        from_email=None,
        recipient_list=owners,
    )
