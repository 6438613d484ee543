"""A person in a real browser: sign up, create a key, see it once, revoke it."""

from __future__ import annotations

import pytest

from accounts.models import ApiKey
from accounts.selectors import api_key_authenticate
from tests.browser import browser_page, screenshot  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_up_create_key_see_it_once_and_revoke(live_server, browser_page):  # noqa: F811
    page = browser_page
    page.goto(f"{live_server.url}/accounts/signup/")
    screenshot(page, "signup")
    page.fill("input[name=organization_name]", "Browser Co")
    page.fill("input[name=email]", "person@browser.test")
    page.fill("input[name=password1]", "a-long-enough-pass-77")
    page.fill("input[name=password2]", "a-long-enough-pass-77")
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")
    assert "Browser Co" in page.content()

    page.click("nav >> text=API keys")
    page.fill("input[name=name]", "laptop")
    page.click("button:has-text('Create key')")
    raw = page.inner_text("#raw-key").strip()
    screenshot(page, "api_key_created")
    assert raw.startswith("ask_")
    assert api_key_authenticate(raw) is not None

    page.goto(f"{live_server.url}/settings/api-keys/")  # come back later: not shown again
    assert raw not in page.content()
    assert raw[:12] in page.content()

    page.click("#keys-table >> text=Revoke")
    page.click("button:has-text('Revoke key')")
    page.wait_for_selector("text=is revoked")
    screenshot(page, "api_key_revoked")
    assert page.is_visible("#keys-table .badge-bad")
    assert api_key_authenticate(raw) is None
    assert ApiKey.objects.count() == 1
