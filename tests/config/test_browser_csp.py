"""The Content-Security-Policy in a real browser: every kind of page (app, sign-in,
admin, API docs, 404) carries it, allows no inline script, and renders with no
console error (a blocked script or style would log one; the fixture fails on it)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.fold import rollups_fold_until_done
from analytics.services import usage_record_batch
from tests.analytics.conftest import call
from tests.browser import browser_page, screenshot  # noqa: F401 (fixture)
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

APP_PAGES = [
    "/dashboard/",
    "/requests/",
    "/models/",
    "/customers/",
    "/features/",
    "/traces/",
    "/settings/api-keys/",
    "/settings/team/",
    "/settings/organization/",
    "/settings/pricing/",
    "/pricing/models",
    "/api/costs/summary",  # DRF's browsable API
]


def script_policy(header: str) -> str:
    directives = dict(
        (part.strip().split(" ", 1) + [""])[:2] for part in header.split(";") if part.strip()
    )
    return directives.get("script-src", directives.get("default-src", ""))


def visit(page, url: str) -> None:
    response = page.goto(url)
    assert response is not None
    policy = response.headers.get("content-security-policy", "")
    assert policy, f"no Content-Security-Policy on {url}"
    assert "'self'" in script_policy(policy)
    assert "unsafe-inline" not in script_policy(policy), url
    assert "unsafe-eval" not in script_policy(policy), url
    page.wait_for_load_state("networkidle")


def test_every_kind_of_page_renders_under_the_policy(live_server, browser_page, org, owner):  # noqa: F811
    usage_record_batch(
        [call(org, timezone.now() - timedelta(minutes=5), cost="1.0000000000", customer_id="c1")]
    )
    rollups_fold_until_done()  # what the fold loop does within seconds
    owner.is_staff = owner.is_superuser = True
    owner.save()
    page = browser_page

    visit(page, f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")

    for path in APP_PAGES:
        visit(page, f"{live_server.url}{path}")
    # The overview's charts are drawn by our static scripts, not inline ones.
    visit(page, f"{live_server.url}/dashboard/")
    page.wait_for_selector("canvas[data-chart][data-drawn]")

    # Django admin.
    visit(page, f"{live_server.url}/admin/")
    visit(page, f"{live_server.url}/admin/pricing/modelprice/")

    # Swagger UI from drf-spectacular-sidecar, started by a same-origin script.
    visit(page, f"{live_server.url}/api/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "AiSpendTrack API" in page.inner_text(".swagger-ui .info .title")
    screenshot(page, "api_docs_under_csp")

    # Our 404 page; no favicon request goes unanswered either.
    response = page.goto(f"{live_server.url}/no-such-page/")
    assert response is not None and response.status == 404
    assert "content-security-policy" in response.headers
    page.wait_for_load_state("networkidle")
    expected = [error for error in page.console_errors if "/no-such-page/" in error]
    assert len(expected) == 1  # the browser reports the page's own 404, and nothing else
    page.console_errors.remove(expected[0])


def test_an_inline_script_is_blocked(live_server, browser_page):  # noqa: F811
    """The policy really is enforced: a script injected inline does not run, and
    the browser reports the violation."""
    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/")
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.injected = true'; document.body.appendChild(s); }"
    )
    assert page.evaluate("() => window.injected === undefined")
    assert any("Content Security Policy" in text for text in page.console_errors)
    page.console_errors.clear()  # provoked on purpose
