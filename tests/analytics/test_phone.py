"""Every page on a phone (390×844): nothing wider than the screen, wide tables scroll
inside their card, the nav folds behind a menu button that opens it (organization and
log-out included). Screenshots go to var/screenshots/phone_*.png."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.fold import rollups_fold_until_done
from analytics.models import Status, UsageEvent
from analytics.services import usage_record_batch
from tests.analytics.conftest import call
from tests.browser import browser_page, console_errors, screenshot  # noqa: F401 (fixture)
from tests.conftest import PASSWORD
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
LONG_CUSTOMER = "customer-with-a-rather-long-identifier-0123456789abcdef"


def _fits(page) -> tuple[int, int]:
    return page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")


def _assert_fits(page, url: str, name: str) -> None:
    page.goto(url)
    page.wait_for_load_state("load")
    width, viewport = _fits(page)
    screenshot(page, f"phone_{name}")
    assert width <= viewport, f"{url} is {width} px wide on a {viewport} px phone"


def _login(page, base: str, email: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")


def test_every_page_fits_a_phone(live_server, browser_page, org, owner, api_key):  # noqa: F811
    now = timezone.now()
    records = []
    for day in range(4):
        at = now - timedelta(days=day, minutes=7)
        records += [
            call(
                org,
                at,
                cost="0.0000004400",
                customer_id=LONG_CUSTOMER,
                feature="summarise-long-documents-for-the-legal-team",
                trace_id="trace-with-a-long-name-42",
                api_key_id=api_key.row.pk,
                properties={"tenant_region": "eu-west-1"},
            ),
            call(org, at, cost="12.3456789000", model="claude-opus-4", provider="anthropic"),
            call(org, at, cost=None, model="brand-new-model-without-a-price"),
            call(org, at, cost="0.0200000000", status=Status.UPSTREAM_ERROR),
        ]
    usage_record_batch(records)
    rollups_fold_until_done()  # what the fold loop does within seconds
    event = UsageEvent.objects.filter(organization=org, customer_id=LONG_CUSTOMER).first()
    assert event is not None

    page = browser_page
    errors = console_errors(page)
    page.set_viewport_size(PHONE)
    base = live_server.url
    # Public pages first.
    _assert_fits(page, f"{base}/", "landing")
    _assert_fits(page, f"{base}/accounts/login/", "login")
    _assert_fits(page, f"{base}/accounts/signup/", "signup")
    _assert_fits(page, f"{base}/pricing/models", "public_prices")

    _login(page, base, owner.email)
    pages = {
        "overview": "/dashboard/",
        "overview_7d": "/dashboard/?range=7d",
        "requests": "/requests/",
        "request_detail": f"/requests/{event.request_id}/",
        "models": "/models/",
        "model_detail": "/models/claude-opus-4/",
        "customers": "/customers/",
        "customer_detail": f"/customers/{LONG_CUSTOMER}/",
        "features": "/features/",
        "feature_detail": "/features/summarise-long-documents-for-the-legal-team/",
        "keys": "/keys/",
        "key_detail": f"/keys/{api_key.row.pk}/",
        "matrix": "/matrix/",
        "traces": "/traces/",
        "trace_detail": "/traces/trace-with-a-long-name-42/",
        "api_keys": "/settings/api-keys/",
        "team": "/settings/team/",
        "org_settings": "/settings/organization/",
        "pricing_settings": "/settings/pricing/",
        "prices_signed_in": "/pricing/models",
        "org_create": "/organizations/new/",
    }
    for name, path in pages.items():
        _assert_fits(page, f"{base}{path}", name)

    # A wide table scrolls inside its card, not the page.
    page.goto(f"{base}/requests/")
    wrap = page.locator(".table-wrap").first
    inner, outer = wrap.evaluate("(el) => [el.scrollWidth, el.clientWidth]")
    assert inner > outer, "the requests table should be wider than a phone and scroll"

    # The nav is folded away behind a menu button; opening it shows the pages,
    # the organization and log-out.
    page.goto(f"{base}/dashboard/")
    assert not page.is_visible("nav.nav >> text=Customers")
    assert not page.is_visible("button:has-text('Log out')")
    page.click("#menu-toggle")
    page.wait_for_selector("nav.nav >> text=Customers", state="visible")
    assert page.is_visible("button:has-text('Log out')")
    assert page.is_visible(".sidebar-foot >> text=Acme")
    width, viewport = _fits(page)
    screenshot(page, "phone_menu_open")
    assert width <= viewport
    page.click("nav.nav >> text=Customers")
    page.wait_for_url("**/customers/")
    assert errors == []


def test_first_call_page_fits_a_phone_and_shows_only_its_own_org(
    live_server,
    browser_page,  # noqa: F811
    org,
    owner,
):
    usage_record_batch([call(org, timezone.now(), customer_id="acme-only-customer")])
    rollups_fold_until_done()  # what the fold loop does within seconds
    newcomer = UserFactory(email="new@globex.test")
    MembershipFactory(organization=OrganizationFactory(name="Globex", slug="globex"), user=newcomer)
    page = browser_page
    page.set_viewport_size(PHONE)
    _login(page, live_server.url, newcomer.email)
    for path, name in [("/dashboard/", "first_call"), ("/customers/", "customers_empty")]:
        _assert_fits(page, f"{live_server.url}{path}", name)
        assert "acme-only-customer" not in page.content()
