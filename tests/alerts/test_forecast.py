"""The overview's month-end forecast, per budget (issue 13, "Forecast, made useful"):
each budget's spend at its period's end by the same rule, hand-computed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from alerts.selectors import budget_status
from alerts.services import budget_create
from tests.alerts.ingest import ingest
from tests.analytics.conftest import call

pytestmark = pytest.mark.django_db

# Sunday Nov 8, 2026, noon UTC (the org's zone): half a day left of the day and of
# the ISO week (Mon Nov 2 – Sun Nov 8), 22.5 days left of November.
NOW = datetime(2026, 11, 8, 12, tzinfo=UTC)


def budget(org, owner, **data):
    values = {"name": "b", "scope": "organization", "period": "month", "amount": "250"}
    return budget_create(
        organization=org, created_by=owner, data={**values, "action": "alert", **data}
    )


@pytest.fixture
def november(org):
    """acme: $10 a day on Nov 1–7 and $3 on Nov 8; zed: $70 on Nov 5."""
    days = [call(org, datetime(2026, 11, d, 10, tzinfo=UTC), cost="10", customer_id="acme")
            for d in range(1, 8)]  # fmt: skip
    ingest(
        [
            *days,
            call(org, datetime(2026, 11, 8, 1, tzinfo=UTC), cost="3", customer_id="acme"),
            call(org, datetime(2026, 11, 5, 9, tzinfo=UTC), cost="70", customer_id="zed"),
        ]
    )


@pytest.mark.parametrize(
    ("data", "projected"),
    [
        # spent so far + the last 7 complete days' average × the days left:
        ({"scope": "customer", "scope_value": "acme"}, "298"),  # 73 + 10 × 22.5
        ({"scope": "customer", "scope_value": "acme", "period": "week"}, "68"),  # 63 + 10 × 0.5
        ({"scope": "customer", "scope_value": "acme", "period": "day"}, "8"),  # 3 + 10 × 0.5
        ({}, "593"),  # the organization: 143 + (140 / 7) × 22.5
    ],
)
def test_each_budget_is_forecast_to_its_periods_end(org, owner, november, data, projected):
    status = budget_status(
        organization=org, budget=budget(org, owner, **data), now=NOW, forecast=True
    )
    assert status.projected == Decimal(projected)
    expected_over = Decimal(projected) - 250 if Decimal(projected) > 250 else None
    assert status.projected_over == expected_over


def test_evaluation_skips_the_forecast(org, owner, november):
    status = budget_status(organization=org, budget=budget(org, owner), now=NOW)
    assert status.projected is None and status.spend == Decimal(143)


def test_overview_and_api_show_each_budgets_forecast(owner_client, org, owner, other_org):
    """Today: $5 so far, nothing in the 7 days before: $5 at the month's end, $4 over $1."""
    ingest([call(org, timezone.now() - timedelta(seconds=1), cost="5")])
    over = budget(org, owner, name="Tight", amount="1")
    budget(org, owner, name="Paused", amount="1", is_active=False)
    budget(other_org, owner, name="Globex budget", amount="1")
    html = owner_client.get("/dashboard/").content.decode()
    card = html[html.index('id="budget-forecasts"') :]
    card = card[: card.index("</table>")]
    assert f'data-budget-id="{over.pk}"' in card and "Tight" in card
    assert "$5.00" in card and "over by" in card and "$4.00" in card
    assert "Paused" not in card and "Globex" not in card
    listed = {b["name"]: b for b in owner_client.get("/api/budgets").json()}
    assert set(listed) == {"Tight", "Paused"} and listed["Tight"]["projected"] == "5.0000000000"


def test_no_budgets_no_budget_forecast(owner_client, org):
    assert 'id="budget-forecasts"' not in owner_client.get("/dashboard/").content.decode()
