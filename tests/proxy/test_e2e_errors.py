"""Every error the proxy answers or passes on, tags, timing and hang-ups."""

from __future__ import annotations

import socket
import time

import anthropic
import httpx
import openai
import pytest

from accounts.models import Scope
from accounts.services import api_key_issue, api_key_revoke
from analytics.models import Status
from proxy import providers  # the manual hook: these upstreams are dead on purpose
from tests.proxy import fake_provider as fake
from tests.proxy.conftest import ProxyServer, proxy_settings

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}


def post(proxy, path="/v1/chat/completions", *, json=CHAT, headers=None, **kwargs):
    return httpx.post(f"{proxy.url}{path}", json=json, headers=headers or {}, **kwargs)


def sdk(proxy, key: str | None) -> openai.OpenAI:
    headers = {"x-aispendtrack-key": key} if key else {}
    return openai.OpenAI(
        base_url=f"{proxy.url}/v1", api_key="sk-x", max_retries=0, default_headers=headers
    )


# --- authentication -------------------------------------------------------------


def test_missing_key_is_401_in_openai_shape(proxy, fake_provider):
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(proxy, None).chat.completions.create(**CHAT)
    error = caught.value.body
    assert "x-aispendtrack-key header is missing" in error["message"]
    assert "Settings → API keys" in error["message"]
    assert error["code"] == "aispendtrack_key_missing"
    assert fake_provider.received == []  # never forwarded


def test_unknown_and_revoked_keys_are_401(proxy, api_key, org, fake_provider):
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(proxy, "ask_" + "x" * 43).chat.completions.create(**CHAT)
    assert "not a valid key" in caught.value.body["message"]

    sdk(proxy, api_key.raw).chat.completions.create(**CHAT)  # valid, and now cached
    api_key_revoke(organization=org, key=api_key.row)
    with pytest.raises(openai.AuthenticationError):
        sdk(proxy, api_key.raw).chat.completions.create(**CHAT)
    assert len(fake_provider.received) == 1
    # Unauthorised calls are not recorded (no key → no organization to charge).
    assert len(proxy.events(1)) == 1


def test_key_without_proxy_scope_is_403_and_not_recorded(proxy, org, owner):
    _, raw = api_key_issue(organization=org, name="read only", scopes=[Scope.READ])
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(proxy, raw).chat.completions.create(**CHAT)
    assert "'proxy' scope" in caught.value.body["message"]
    assert proxy.events(0, timeout=0) == []


def test_auth_errors_use_the_route_providers_shape(proxy):
    client = anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[])
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "authentication_error"

    gemini = post(proxy, "/gemini/v1beta/models/gemini-2.5-flash:generateContent", json={})
    assert gemini.status_code == 401
    assert gemini.json()["error"]["status"] == "UNAUTHENTICATED"
    assert gemini.json()["error"]["code"] == 401


# --- tags -----------------------------------------------------------------------


def test_tags_are_recorded_and_never_forwarded(proxy, api_key, fake_provider):
    tags = {
        "x-customer-id": "cust_42",
        "x-feature": "summarise",
        "x-trace-id": "trace-7",
        "x-environment": "staging",
        "x-property-team": "growth",
        "x-property-plan": "pro",
    }
    response = post(proxy, headers={"x-aispendtrack-key": api_key.raw, **tags})
    assert response.status_code == 200
    forwarded = {name.lower() for name, _ in fake_provider.last().headers}
    assert forwarded.isdisjoint({*tags, "x-aispendtrack-key"})

    [event] = proxy.events(1)
    assert (event.customer_id, event.feature, event.trace_id, event.environment) == (
        "cust_42",
        "summarise",
        "trace-7",
        "staging",
    )
    assert event.properties == {"team": "growth", "plan": "pro"}


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"x-customer-id": "c" * 257}, "the limit is 256"),
        ({f"x-property-p{n}": "v" for n in range(21)}, "the limit is 20"),
        ({"x-feature": "chat\tbot"}, "control characters"),
    ],
    ids=["too-long", "too-many-properties", "control-character"],
)
def test_bad_tags_are_400_recorded_and_not_forwarded(
    proxy, api_key, fake_provider, headers, fragment
):
    response = post(proxy, headers={"x-aispendtrack-key": api_key.raw, **headers})
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]
    assert fake_provider.received == []
    [event] = proxy.events(1)
    assert (event.status, event.http_status) == (Status.CLIENT_ERROR, 400)
    assert event.request_id == response.headers["x-aispendtrack-request-id"]


def test_body_that_is_not_json_is_forwarded_as_is(proxy, api_key, fake_provider):
    response = post(
        proxy,
        json=None,
        content=b"{not json",
        headers={"x-aispendtrack-key": api_key.raw, "content-type": "application/json"},
    )
    assert response.status_code == 400  # the provider's answer, passed on
    assert fake_provider.last().body == b"{not json"
    [event] = proxy.events(1)
    assert event.status == Status.CLIENT_ERROR and event.input_tokens == 0


# --- upstream failures -----------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_upstream_is_502_in_the_callers_shape(proxy, api_key):
    providers.provider_register("deadend", f"http://127.0.0.1:{closed_port()}", "openai")
    providers.provider_register("deadant", f"http://127.0.0.1:{closed_port()}", "anthropic")
    try:
        oa = post(
            proxy, "/deadend/v1/chat/completions", headers={"x-aispendtrack-key": api_key.raw}
        )
        an = post(proxy, "/deadant/v1/messages", headers={"x-aispendtrack-key": api_key.raw})
    finally:
        providers.provider_unregister("deadend")
        providers.provider_unregister("deadant")
    assert oa.status_code == an.status_code == 502
    assert "could not reach deadend" in oa.json()["error"]["message"]
    assert an.json()["type"] == "error" and an.json()["error"]["type"] == "api_error"
    events = proxy.events(2)
    assert [(e.status, e.http_status) for e in events] == [(Status.UPSTREAM_ERROR, 502)] * 2
    assert events[0].model == "gpt-4o"


def test_slow_upstream_is_504_and_recorded_as_timeout(proxy, api_key):
    started = time.monotonic()
    response = post(proxy, headers={"x-aispendtrack-key": api_key.raw, "x-fake-hang": "30"})
    assert response.status_code == 504
    assert time.monotonic() - started < 10  # the proxy's read timeout (2 s here), not the hang
    assert "AISPENDTRACK_READ_TIMEOUT" in response.json()["error"]["message"]
    [event] = proxy.events(1)
    assert (event.status, event.http_status) == (Status.TIMEOUT, 504)


# --- streams: timing, hang-ups, cuts ---------------------------------------------


def test_chunks_are_relayed_as_they_arrive(proxy, api_key, fake_provider):
    """The fake sends each next chunk only after the client has read the one
    before: a proxy that buffered the stream would never deliver the first, and
    the read would time out instead of the test passing."""
    step = f"relay-{time.monotonic_ns()}"
    chunks = 0
    with httpx.stream(
        "POST",
        f"{proxy.url}/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers={"x-aispendtrack-key": api_key.raw, "x-fake-step": step},
        timeout=httpx.Timeout(10.0),
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                chunks += 1
                fake_provider.release(step)  # only now may the next chunk leave the fake
    assert chunks == len(fake.WORDS) + 2


def test_client_hang_up_closes_upstream_and_records_cancelled(proxy, api_key, fake_provider):
    with httpx.stream(
        "POST",
        f"{proxy.url}/v1/chat/completions",
        json={**CHAT, "stream": True, "stream_options": {"include_usage": True}},
        headers={"x-aispendtrack-key": api_key.raw, "x-fake-sleep": "0.5"},
    ) as response:
        lines = response.iter_lines()
        next(line for line in lines if line.startswith("data:"))
    # httpx closed the connection mid-stream.
    [event] = proxy.events(1)
    assert event.status == Status.CANCELLED and event.streamed
    assert event.response_model == fake.CHAT_MODEL_ANSWERED  # what was seen is kept
    deadline = time.monotonic() + 5
    while not fake_provider.aborted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_provider.aborted == ["/v1/chat/completions"]  # upstream was closed too


def test_client_hang_up_while_waiting_records_cancelled(proxy, api_key):
    with pytest.raises(httpx.ReadTimeout):
        post(proxy, headers={"x-aispendtrack-key": api_key.raw, "x-fake-hang": "1.5"}, timeout=0.3)
    [event] = proxy.events(1)
    assert event.status == Status.CANCELLED and not event.streamed


@pytest.fixture
def stock_proxy(transactional_db, fake_provider, tmp_path, django_db_blocker):
    """The proxy under uvicorn's own httptools protocol, without config.httpguard's
    hang-up hook: the endpoint watches for the client's hang-up with a task."""
    with proxy_settings(fake_provider, tmp_path, AISPENDTRACK_READ_TIMEOUT=2.0):
        server = ProxyServer(http="httptools").start()
    try:
        yield server
        server.flush()
    finally:
        server.stop()


def test_client_hang_up_under_a_server_without_the_hook_records_cancelled(
    stock_proxy, api_key, fake_provider
):
    with pytest.raises(httpx.ReadTimeout):
        post(
            stock_proxy,
            headers={"x-aispendtrack-key": api_key.raw, "x-fake-hang": "1.5"},
            timeout=0.3,
        )
    [event] = stock_proxy.events(1)
    assert event.status == Status.CANCELLED and not event.streamed
    # A call answered in full is no cancel, and keep-alive still works.
    assert post(stock_proxy, headers={"x-aispendtrack-key": api_key.raw}).status_code == 200
    assert stock_proxy.events(2)[1].status == Status.SUCCESS


def test_upstream_cut_mid_stream_is_passed_on_and_recorded(proxy, api_key):
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST",
            f"{proxy.url}/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers={"x-aispendtrack-key": api_key.raw, "x-fake-cut": "3"},
        ) as response,
    ):
        list(response.iter_lines())
    [event] = proxy.events(1)
    assert event.status == Status.UPSTREAM_ERROR and event.streamed
