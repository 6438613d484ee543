"""Onboarding that finishes itself, in a real browser against the real app: sign up,
create a key, run the page's own Python snippet as a real `openai` SDK call through
the proxy to the fake provider, and watch the call appear on the same page without
a reload."""

from __future__ import annotations

import pytest

from analytics.models import UsageEvent
from tests.browser import browser_page, console_errors, screenshot  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_sign_up_key_snippet_first_call_appears_live(proxy, browser_page, monkeypatch):  # noqa: F811
    page = browser_page
    errors = console_errors(page)
    page.goto(f"{proxy.url}/accounts/signup/")
    page.fill("input[name=organization_name]", "Snippet Co")
    page.fill("input[name=email]", "first@snippet.test")
    page.fill("input[name=password1]", "a-long-enough-pass-77")
    page.fill("input[name=password2]", "a-long-enough-pass-77")
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")

    page.click("nav >> text=API keys")
    page.fill("input[name=name]", "laptop")
    page.click("button:has-text('Create key')")
    raw = page.inner_text("#raw-key").strip()
    snippets = {
        name: page.inner_text(f"#snippet-{name}")
        for name in (
            "python-openai",
            "python-anthropic",
            "node-openai",
            "node-anthropic",
            "python-gemini",
            "curl",
            "tags",
        )
    }
    for name, text in snippets.items():
        assert raw in text, f"the {name} snippet lacks the new key"
    assert f'base_url="{proxy.url}/v1"' in snippets["python-openai"]
    assert f"{proxy.url}/v1/chat/completions" in snippets["curl"]
    assert page.locator("#snippets [data-copy]").count() == len(snippets)
    page.evaluate("window.notReloaded = true")
    screenshot(page, "onboarding_snippets")

    # The snippet, pasted as is, with the person's own provider key in the environment.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-provider-key")
    namespace: dict = {}
    exec(snippets["python-openai"], namespace)  # noqa: S102 (our own page's snippet)
    assert namespace["reply"].choices[0].message.content
    [event] = proxy.events(1, api_key__prefix=raw[:12])

    link = page.wait_for_selector("#first-call-link")
    assert link.get_attribute("href") == f"/requests/{event.request_id}/"
    assert "gpt-4o-mini" in link.inner_text()
    assert page.evaluate("window.notReloaded") is True  # the same page, live
    screenshot(page, "onboarding_first_call")
    link.click()
    page.wait_for_url(f"**/requests/{event.request_id}/")
    assert UsageEvent.objects.filter(request_id=event.request_id).count() == 1
    assert errors == []
