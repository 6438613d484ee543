"""A person in a real browser: log in, see the overview chart drawn, sort customers by
cost, open a customer's detail page (headless Chromium against the live server)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.fold import rollups_fold_until_done
from analytics.services import usage_record_batch
from tests.analytics.conftest import call
from tests.analytics.test_formatting import MONEY_CASES
from tests.browser import browser_page, console_errors, screenshot  # noqa: F401 (fixture)
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_overview_chart_sort_customers_and_open_detail(live_server, browser_page, org, owner):  # noqa: F811
    now = timezone.now()
    records = []
    for day in range(5):
        at = now - timedelta(days=day, minutes=5)
        records += [
            call(org, at, cost="4.0000000000", customer_id="whale-inc", model="claude-opus-4"),
            call(org, at, cost="0.5000000000", customer_id="minnow-llc"),
            call(org, at, cost="1.2500000000", customer_id="mid-corp", feature="search"),
        ]
    usage_record_batch(records)
    rollups_fold_until_done()  # what the fold loop does within seconds

    page = browser_page
    errors = console_errors(page)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")

    # Chart.js ran and drew the stacked trend (one dataset per model, plus the
    # previous period's line), calls per day (succeeded, failed) and the pie.
    page.wait_for_selector("#trend-chart[data-drawn='3']")
    page.wait_for_selector("#calls-chart[data-drawn='2']")
    page.wait_for_selector("#model-pie[data-drawn='1']")
    painted = page.evaluate(
        "() => { const c = document.getElementById('trend-chart');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"
    )
    assert painted > 1000, "the trend canvas is blank"
    screenshot(page, "analytics_overview")

    # Chart tooltips format money by the same rule as the pages (hand-written cases).
    for amount, shown in MONEY_CASES:
        assert page.evaluate(f"window.aispendMoney({amount})") == shown, amount
    # Axis ticks carry the decimals their step needs, never a row of "$0".
    draw = "t.map((x, i) => window.aispendTick(x.value, i, t))"
    ticks = "[0, 0.00002, 0.00004].map((value) => ({value}))"
    labels = page.evaluate(f"(() => {{ const t = {ticks}; return {draw}; }})()")
    assert labels == ["$0", "$0.00002", "$0.00004"]
    ticks = "[0, 500, 1000, 1500].map((value) => ({value}))"
    labels = page.evaluate(f"(() => {{ const t = {ticks}; return {draw}; }})()")
    assert labels == ["$0", "$500", "$1,000", "$1,500"]

    page.click("nav >> text=Customers")
    page.wait_for_url("**/customers/")
    page.click("#dimension-table [data-sort-key=name]")
    page.wait_for_url("**sort=name**")
    page.click("#dimension-table [data-sort-key=cost]")
    page.wait_for_url("**sort=-cost**")  # a number column sorts biggest first
    names = page.locator("#dimension-table tbody tr td:first-child").all_inner_texts()
    assert names == ["whale-inc", "mid-corp", "minnow-llc"]
    screenshot(page, "analytics_customers_by_cost")

    page.click("#dimension-table >> text=whale-inc")
    page.wait_for_url("**/customers/whale-inc/**")
    page.wait_for_selector("#trend-chart[data-drawn='1']")
    assert "$20.00" in page.inner_text("#detail-stats")  # 5 days × $4
    assert "claude-opus-4" in page.inner_text(".breakdown-model")
    screenshot(page, "analytics_customer_detail")
    assert errors == []


def test_overview_and_requests_update_without_a_reload(live_server, browser_page, org, owner):  # noqa: F811
    usage_record_batch([call(org, timezone.now() - timedelta(minutes=3), customer_id="early-bird")])
    rollups_fold_until_done()  # what the fold loop beside the web workers does
    page = browser_page
    errors = console_errors(page)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")
    assert page.inner_text("#headline-calls .value") == "1"
    page.evaluate("window.notReloaded = true")

    usage_record_batch([call(org, timezone.now(), customer_id="late-comer")])
    # The page first sees the new call with its rollups still unfolded, then
    # (the marker moves again) the folded numbers.
    page.wait_for_selector("#live[data-live-latest$='+']", state="attached", timeout=15_000)
    rollups_fold_until_done()
    page.wait_for_selector("#headline-calls .value:text-is('2')", timeout=15_000)
    page.wait_for_selector("#trend-chart[data-drawn]")  # charts redrawn in the new block
    assert page.evaluate("window.notReloaded") is True

    page.goto(f"{live_server.url}/requests/")
    page.evaluate("window.notReloaded = true")
    usage_record_batch([call(org, timezone.now(), customer_id="newest-one")])
    page.wait_for_selector("#live table.records >> text=newest-one", timeout=15_000)
    assert page.evaluate("window.notReloaded") is True
    assert errors == []


# A tab whose `document.hidden` the test sets (window.__hidden), as a browser
# does for a tab in the background.
HIDDEN_BY_TEST = """
Object.defineProperty(document, "hidden", {get: () => window.__hidden === true});
"""


def test_a_second_tab_takes_the_shared_block_from_its_poll(
    live_server,
    browser_page,  # noqa: F811
    org,
    owner,
    settings,
):
    """Two tabs of one organization: the first to see a new call fetches the
    #live block (rendered and shared), the other gets it in its poll's answer
    and fetches nothing."""
    settings.AISPENDTRACK_LIVE_FRAGMENT_SECONDS = 60  # the share outlives the test's steps
    usage_record_batch([call(org, timezone.now() - timedelta(minutes=3), customer_id="first")])
    rollups_fold_until_done()
    first = browser_page
    first.context.add_init_script(HIDDEN_BY_TEST)
    first.goto(f"{live_server.url}/accounts/login/")
    first.fill("input[name=login]", owner.email)
    first.fill("input[name=password]", PASSWORD)
    first.click("button[type=submit]")
    first.wait_for_url("**/dashboard/")
    second = first.context.new_page()
    second.add_init_script("window.__hidden = true")
    second.goto(f"{live_server.url}/dashboard/")
    assert second.evaluate("document.hidden") is True
    fetched = {first: 0, second: 0}
    for tab in fetched:
        tab.on(
            "request",
            lambda request, tab=tab: fetched.__setitem__(
                tab, fetched[tab] + ("x-aispendtrack-live" in request.headers)
            ),
        )

    usage_record_batch([call(org, timezone.now(), customer_id="second")])
    rollups_fold_until_done()
    first.wait_for_selector("#headline-calls .value:text-is('2')", timeout=15_000)
    assert fetched == {first: 1, second: 0}
    second.evaluate(
        "window.__hidden = false; document.dispatchEvent(new Event('visibilitychange'))"
    )
    second.wait_for_selector("#headline-calls .value:text-is('2')", timeout=15_000)
    second.wait_for_selector("#trend-chart[data-drawn]")
    assert fetched == {first: 1, second: 0}
    assert second.evaluate("document.getElementById('live').dataset.liveLatest") == first.evaluate(
        "document.getElementById('live').dataset.liveLatest"
    )
