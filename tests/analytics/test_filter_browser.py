"""The filter bar in a real browser (headless Chromium, the production CSP):
set filters, see the URL and the table change, remove one by its chip; on a
desktop and on a 390 px phone, where nothing may be wider than the screen."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from analytics.fold import rollups_fold_until_done
from analytics.services import usage_record_batch
from tests.analytics.conftest import call
from tests.analytics.test_phone import PHONE, _fits
from tests.browser import browser_page, console_errors, screenshot  # noqa: F401 (fixture)
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PLANS = ("free", "pro", "enterprise")


def _calls(org):
    now = timezone.now()
    records = [
        call(
            org,
            now - timedelta(hours=n),
            cost=f"{0.01 * (n + 1):.10f}",
            customer_id=f"customer-{n % 4}",
            status="success" if n % 3 else "upstream_error",
            latency_ms=100 * (n + 1),
            properties={"plan": PLANS[n % 3]},
        )
        for n in range(12)
    ]
    usage_record_batch(records)
    rollups_fold_until_done()
    return records


def _rows(page) -> int:
    return page.locator("#live table.records tbody tr:not(:has(td.empty))").count()


def _query(page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_filters_set_in_the_bar_drive_the_url_and_the_table(
    live_server,
    browser_page,  # noqa: F811
    org,
    owner,
    viewport,
):
    records = _calls(org)
    page = browser_page
    errors = console_errors(page)
    if viewport == "phone":
        page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")

    page.goto(f"{live_server.url}/requests/?range=7d")
    assert _rows(page) == len(records)
    page.click("#filter-bar > summary")
    page.fill("#f-property", "plan:pro")
    page.select_option("#f-status", "success")
    page.fill("#f-latency-max", "900")
    if viewport == "phone":
        width, screen = _fits(page)
        assert width <= screen, f"the open filter bar is {width} px on a {screen} px phone"
    page.click("#filter-apply")
    page.wait_for_url("**latency_max=900**")
    query = _query(page)
    assert query["property"] == ["plan:pro"] and query["status"] == ["success"]
    assert query["range"] == ["7d"]  # the date range is kept
    expected = [
        r
        for r in records
        if r.properties["plan"] == "pro" and r.status == "success" and r.latency_ms <= 900
    ]
    assert _rows(page) == len(expected) > 0
    chips = page.locator("#filter-chips .chip")
    assert chips.count() == 3
    screenshot(page, f"filters_requests_{viewport}")
    width, screen = _fits(page)
    assert width <= screen

    # The export link carries the filters and the dates.
    export = page.get_attribute(".export-buttons a >> nth=0", "href")
    assert "property=plan%3Apro" in export and "latency_max=900" in export
    assert "start_date=" in export and "end_date=" in export

    # Removing a chip drops that one filter, keeps the others.
    page.click("#filter-chips .chip[data-filter=latency_max]")
    page.wait_for_function("() => !location.search.includes('latency_max')")
    assert "property" in _query(page) and "status" in _query(page)
    assert _rows(page) == sum(
        1 for r in records if r.properties["plan"] == "pro" and r.status == "success"
    )

    # The filters follow to the other pages through the nav-free URL: the overview
    # reads them (rollup-answered and event-only alike).
    page.goto(f"{live_server.url}/dashboard/?range=7d&cost_min=0.05&customer_id=customer-1")
    wanted = [r for r in records if r.customer_id == "customer-1" and r.cost >= Decimal("0.05")]
    assert page.inner_text("#headline-calls .value") == str(len(wanted))
    width, screen = _fits(page)
    screenshot(page, f"filters_overview_{viewport}")
    assert width <= screen
    assert errors == []
