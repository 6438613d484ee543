"""A person in a real browser: upload a revenue CSV, see an unprofitable customer,
open its P&L, and open the simulator for a feature."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.fold import rollups_fold_until_done
from analytics.services import usage_record_batch
from tests.analytics.conftest import call
from tests.analytics.test_simulator import bundled, price_data  # noqa: F401 (fixtures)
from tests.browser import browser_page, console_errors, screenshot  # noqa: F401 (fixture)
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_revenue_csv_unprofitable_customer_and_simulator(
    live_server,
    browser_page,  # noqa: F811
    bundled,  # noqa: F811
    org,
    owner,
    tmp_path,
):
    now = timezone.now()
    today = now.date()
    first = today.replace(day=1)
    at = now - timedelta(minutes=5)
    usage_record_batch(
        [
            # gpt-4o ($2.50 / $10 per Mtok): 40,000 in + 2,000 out = $0.12 a call.
            call(
                org,
                at,
                cost="0.1200000000",
                customer_id="bleeding-co",
                feature="chat",
                input_tokens=40_000,
                output_tokens=2_000,
            ),
            call(
                org,
                at,
                cost="0.1200000000",
                customer_id="happy-co",
                feature="chat",
                input_tokens=40_000,
                output_tokens=2_000,
            ),
        ]
    )
    rollups_fold_until_done()  # what the fold loop does within seconds
    csv = tmp_path / "revenue.csv"
    csv.write_text(
        "customer_id,amount,period_start,period_end,external_id\n"
        f"bleeding-co,0.05,{first},{today},inv-b\n"
        f"happy-co,500,{first},{today},inv-h\n"
    )
    page = browser_page
    console_errors(page)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")

    # Settings → Revenue: upload, preview, import.
    page.click("nav >> text=Revenue")
    page.set_input_files("#revenue-upload input[type=file]", str(csv))
    page.click("#revenue-upload button:has-text('Preview')")
    page.wait_for_selector("#revenue-preview")
    assert "2 good lines" in page.inner_text("#revenue-preview")
    page.click("#revenue-preview button:has-text('Import 2 lines')")
    page.wait_for_selector("text=Imported revenue: 2 new, 0 replaced.")
    screenshot(page, "revenue_settings")

    # The overview says who costs more than they pay; the card leads to them.
    page.goto(f"{live_server.url}/dashboard/")
    card = page.wait_for_selector("#unprofitable-card")
    assert "1 customer costs more than it pays this month" in card.inner_text()
    card.click()
    page.wait_for_selector("#dimension-table")
    rows = page.inner_text("#dimension-table tbody")
    assert "bleeding-co" in rows and "happy-co" not in rows
    screenshot(page, "customers_unprofitable")

    # Its page: margin and the monthly P&L chart, drawn (revenue, cost, margin).
    page.click("#dimension-table >> text=bleeding-co")
    page.wait_for_selector("#pnl-chart[data-drawn='3']")
    assert page.inner_text("[data-testid=customer-margin]").startswith("-")
    screenshot(page, "customer_pnl")

    # The simulator for the feature.
    page.click("nav >> text=Simulate")
    page.select_option("select[name=scope]", "feature")
    page.fill("input[name=value]", "chat")
    page.click("#simulate-form button[type=submit]")
    page.wait_for_selector("[data-testid=no-benchmark-candidates]")
    assert "gpt-4o-mini" in page.inner_text("[data-testid=no-benchmark-candidates]") or (
        page.locator("[data-testid=no-benchmark-candidates] tbody tr").count() > 10
    )
    assert page.locator("#scope-usage tbody tr").count() == 1
    screenshot(page, "simulate_feature")
