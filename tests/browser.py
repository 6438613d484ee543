"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

Import the `browser_page` fixture into a test module's namespace (or conftest).
A test fails if the browser logged a console error (CSP violations included).
Without Chromium the tests skip with a reason, except in CI, where .ci/run
installs it and a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.db import connections

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"


@pytest.fixture
def browser_page(monkeypatch):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; .ci/run should have installed it")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own
    # ORM calls are still plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        # Console errors fail the test: a Content-Security-Policy violation, a
        # script error or a missing file (a favicon 404 included) shows there.
        errors: list[str] = []
        page.on(
            "console",
            lambda message: (
                errors.append(f"{message.text} ({message.location.get('url')})")
                if message.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
        page.console_errors = errors  # a test that provokes an error on purpose clears it
        try:
            yield page
            assert not errors, "console errors in the browser:\n" + "\n".join(errors)
        finally:
            context.close()
            browser.close()
            # ORM calls made while Playwright's loop runs get their own
            # connection (asgiref's Local follows the context); close it here,
            # or PostgreSQL refuses to drop the test database at the end.
            connections.close_all()


def screenshot(page, name: str) -> None:
    """Keep a picture of the page under var/screenshots for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def console_errors(page) -> list[str]:
    """A list that fills with the page's uncaught exceptions and console errors
    (a CSP violation is one): assert it is empty at the end of a test."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors
