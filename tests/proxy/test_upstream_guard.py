"""Provider base URLs never reach internal addresses: refused when staff save
them, and again when the proxy connects (the resolver sees every resolution;
IP literals are checked per host). AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS=1
lifts both; the built-in upstreams (from settings) are trusted."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from pricing.models import Provider
from proxy import providers
from proxy.resolver import LiteralGuard, PublicResolver
from tests.proxy.conftest import ProxyServer, proxy_settings

INTERNAL = [
    "http://127.0.0.1:6379",
    "http://127.0.0.2",
    "http://localhost:8080",
    "http://169.254.169.254/latest",
    "http://10.0.0.1",
    "http://192.168.1.10",
    "http://172.16.0.5",
    "http://100.64.0.1",
    "http://[::1]:8000",
    "http://[fd00::1]",
    "http://[::ffff:127.0.0.1]",
    "http://0.0.0.0",
]


# --- save time ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", INTERNAL)
def test_internal_base_urls_are_refused_at_save(url):
    provider = Provider(slug="gw", name="Gateway", api_style="openai", base_url=url)
    with pytest.raises(ValidationError) as caught:
        provider.full_clean()
    message = " ".join(caught.value.message_dict["base_url"])
    assert "internal address" in message and "AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS" in message
    with override_settings(AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS=True):
        provider.full_clean()


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["https://8.8.8.8", "https://gw.acme.test/openai"])
def test_public_and_not_yet_resolvable_urls_may_be_saved(url):
    Provider(slug="gw", name="Gateway", api_style="openai", base_url=url).full_clean()


# --- connect time (units) ------------------------------------------------------------


class FixedResolver:
    def __init__(self, *addresses: str):
        self.addresses = addresses

    async def resolve(self, host, port=0, family=0):
        return [
            {"hostname": host, "host": a, "port": port, "family": 0, "proto": 0, "flags": 0}
            for a in self.addresses
        ]

    async def close(self):
        return None


@pytest.mark.parametrize(
    ("addresses", "refused"),
    [
        (("93.184.215.14",), False),
        (("2606:2800:21f:cb07:6820:80da:af6b:8b2c",), False),
        (("93.184.215.14", "10.1.2.3"), True),  # one internal answer is enough
        (("169.254.169.254",), True),
        (("::1",), True),
        (("fe80::1%eth0",), True),
    ],
)
def test_resolver_refuses_internal_answers(addresses, refused):
    resolver = PublicResolver(
        trusted=frozenset({"api.openai.com"}), inner=FixedResolver(*addresses)
    )
    if refused:
        with pytest.raises(OSError, match="internal address"):
            asyncio.run(resolver.resolve("gw.example", 443))
    else:
        assert len(asyncio.run(resolver.resolve("gw.example", 443))) == len(addresses)
    # The operator's own upstreams are trusted whatever they resolve to.
    assert asyncio.run(resolver.resolve("api.openai.com", 443))


def test_literal_guard():
    guard = LiteralGuard(frozenset({"127.0.0.1"}))
    assert guard.refusal("127.0.0.1") is None  # a built-in upstream's host
    assert "internal address" in guard.refusal("127.0.0.2")
    assert "internal address" in guard.refusal("[::1]")
    assert guard.refusal("8.8.8.8") is None
    assert guard.refusal("gw.example") is None  # names go through the resolver


# --- connect time (end to end) -------------------------------------------------------


@pytest.fixture
def guarded_proxy(transactional_db, django_db_blocker, fake_provider, tmp_path):
    """A second proxy with the guard on, stopped before the test database is
    flushed (its background refreshers would otherwise race the TRUNCATE)."""
    with (
        proxy_settings(fake_provider, tmp_path, AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS=False),
        django_db_blocker.unblock(),
    ):
        server = ProxyServer().start()
    yield server
    with django_db_blocker.unblock():
        server.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_proxy_refuses_internal_upstreams_of_registered_providers(
    guarded_proxy, api_key, fake_provider
):
    fake_provider.received.clear()
    registered = {
        "byname": f"http://localhost:{fake_provider.port}",  # resolves to loopback
        "otherloop": f"http://127.0.0.2:{fake_provider.port}",
        "meta": "http://169.254.169.254",
        "tenish": "http://[::1]:9",
    }
    for slug, url in registered.items():
        providers.provider_register(slug, url)
    headers = {"x-aispendtrack-key": api_key.raw, "authorization": "Bearer sk-tenant-secret"}
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    try:
        for slug in registered:
            response = httpx.post(
                f"{guarded_proxy.url}/{slug}/v1/chat/completions",
                json=body,
                headers=headers,
                timeout=30,
            )
            assert response.status_code == 502, slug
            error = response.json()["error"]
            assert "internal address" in error["message"], error
            assert "AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS" in error["message"]
        assert fake_provider.received == []  # the tenant's key went nowhere

        # The built-in upstream (settings, trusted) is on loopback in tests and works.
        ok = httpx.post(
            f"{guarded_proxy.url}/v1/chat/completions", json=body, headers=headers, timeout=30
        )
        assert ok.status_code == 200
    finally:
        for slug in registered:
            providers.provider_unregister(slug)
