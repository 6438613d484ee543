"""config.asgi's application: provider paths to the proxy, the rest to Django."""

from __future__ import annotations

import httpx
import pytest

from proxy import providers

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_non_proxy_paths_reach_django(proxy, fake_provider):
    health = httpx.get(f"{proxy.url}/healthz")
    assert health.status_code == 200
    # A /<slug>/v1 path without our key header is not a proxy call: Django's 404.
    page = httpx.get(f"{proxy.url}/nosuch/v1/anything")
    assert page.status_code == 404
    assert "application/json" not in page.headers.get("content-type", "")
    assert fake_provider.received == []


def test_the_shared_client_never_replays_upstream_cookies(proxy, api_key, fake_provider):
    """One client session serves every tenant, so a cookie set for one call
    must not ride along on the next (another tenant's) call."""
    session = proxy.runtime.session
    # A host name, not an IP: cookie jars ignore cookies from IP addresses.
    providers.provider_register("byname", f"http://localhost:{fake_provider.port}")
    url = f"{proxy.url}/byname/v1/embeddings"
    headers = {"x-aispendtrack-key": api_key.raw}
    body = {"model": "m", "input": "x"}
    try:
        first = httpx.post(url, json=body, headers={**headers, "x-fake-set-cookie": "1"})
        assert "tenant-a" in first.headers["set-cookie"]  # passed on to its own caller
        httpx.post(url, json=body, headers=headers)
    finally:
        providers.provider_unregister("byname")
    assert fake_provider.last().header("cookie") is None
    assert proxy.runtime.session is session and not session.closed
