"""A person sorting tables in a real browser, on a desktop and on a phone: header
clicks sort customers both ways, sparklines are drawn, the matrix opens from the
customers page and sorts by a feature, traces are searched. Runs under the
production CSP; any console error fails the test."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.fold import rollups_fold_until_done
from analytics.services import usage_record_batch
from tests.analytics.conftest import call
from tests.browser import browser_page, console_errors, screenshot  # noqa: F401 (fixture)
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}


def _seed(org) -> None:
    now = timezone.now()
    records = []
    for day in range(5):
        at = now - timedelta(days=day, minutes=5)
        records += [
            call(
                org, at, cost="4.00", customer_id="whale-inc", feature="chat", trace_id=f"run-{day}"
            ),
            call(org, at, cost="0.50", customer_id="minnow-llc", feature="search"),
            call(org, at, cost="0.50", customer_id="minnow-llc", feature="search"),
            call(org, at, cost="1.25", customer_id="mid-corp", feature="search"),
        ]
    usage_record_batch(records)
    rollups_fold_until_done()  # what the fold loop does within seconds


def _names(page) -> list[str]:
    return page.locator("#dimension-table tbody tr td:first-child").all_inner_texts()


def _fits(page) -> bool:
    width, viewport = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]"
    )
    return width <= viewport


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_sort_tables_open_the_matrix_and_search_traces(
    live_server,
    browser_page,  # noqa: F811
    org,
    owner,
    viewport,
):
    _seed(org)
    page = browser_page
    errors = console_errors(page)
    page.set_viewport_size(viewport)
    name = "phone" if viewport is PHONE else "desktop"
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")

    page.goto(f"{live_server.url}/customers/")
    assert _names(page) == ["whale-inc", "mid-corp", "minnow-llc"]  # by cost
    assert page.locator("#dimension-table svg.sparkline polyline").count() == 3
    page.click("#dimension-table [data-sort-key=calls]")
    page.wait_for_url("**sort=-calls**")
    assert _names(page) == ["minnow-llc", "mid-corp", "whale-inc"]  # 10, 5, 5 calls; ties by name
    page.click("#dimension-table [data-sort-key=calls]")
    page.wait_for_url("**sort=calls**")
    assert _names(page) == ["mid-corp", "whale-inc", "minnow-llc"]
    assert page.get_attribute("#dimension-table th[aria-sort]", "aria-sort") == "ascending"
    assert _fits(page)
    screenshot(page, f"tables_customers_{name}")

    page.click("#matrix-link")
    page.wait_for_url("**/matrix/**")
    page.click("#matrix-table [data-sort-key='feature:search']")
    page.wait_for_url("**sort=-feature%3Asearch**")
    rows = page.locator("#matrix-table tbody tr td:first-child").all_inner_texts()
    assert rows == ["mid-corp", "minnow-llc"]  # $6.25 and $5.00 in search; whale-inc never used it
    assert _fits(page)
    screenshot(page, f"tables_matrix_{name}")

    page.goto(f"{live_server.url}/traces/")
    page.fill("#trace-search input[name=q]", "run-3")
    page.click("#trace-search button[type=submit]")
    page.wait_for_url("**q=run-3**")
    assert page.locator("#traces-table tbody a.mono").all_inner_texts() == ["run-3"]
    assert _fits(page)
    assert errors == []
