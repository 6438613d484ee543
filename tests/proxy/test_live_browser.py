"""Live pages in Chromium against config.asgi's application (the lean poll,
proxy/live.py): the overview updates without a reload, and a hidden tab
asks nothing until it is shown again (static/js/live.js, unchanged)."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from analytics.fold import rollups_fold_until_done
from analytics.services import usage_record_batch
from tests.analytics.conftest import call
from tests.browser import browser_page, console_errors  # noqa: F401 (fixture)
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_overview_updates_through_the_lean_poll_and_pauses_when_hidden(
    proxy,
    browser_page,  # noqa: F811
    org,
    owner,
    monkeypatch,
):
    endpoint = proxy.runtime.live
    answered: list[bool] = []  # polls: answered by the lean path?
    refreshes: list[bool] = []  # the #live block's: answered from the shared render?
    original = endpoint._answer

    def spy(scope):
        response = original(scope)
        (answered if scope["path"] == endpoint.path else refreshes).append(response is not None)
        return response

    monkeypatch.setattr(endpoint, "_answer", spy)
    usage_record_batch([call(org, timezone.now())])
    rollups_fold_until_done()
    page = browser_page
    errors = console_errors(page)
    page.goto(f"{proxy.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")
    assert page.inner_text("#headline-calls .value") == "1"
    page.evaluate("window.notReloaded = true")

    usage_record_batch([call(org, timezone.now())])
    rollups_fold_until_done()
    page.wait_for_selector("#headline-calls .value:text-is('2')", timeout=15_000)
    assert page.evaluate("window.notReloaded") is True
    assert answered and all(answered)  # every poll answered by the lean path
    assert refreshes[:1] == [False]  # the only tab rendered its block itself

    # Hidden: no poll for two intervals; shown again: one at once.
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    time.sleep(0.5)  # a tick already in flight lands
    polls = len(answered)
    time.sleep(11)
    assert len(answered) == polls
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    deadline = time.monotonic() + 3
    while len(answered) == polls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(answered) == polls + 1
    assert errors == []
