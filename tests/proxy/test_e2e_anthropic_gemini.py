"""Anthropic SDK and Gemini's native API through the proxy, and a registered provider."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from analytics.models import Status
from pricing import engine
from pricing.models import Provider
from tests.proxy import fake_provider as fake

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

START: dict = fake.ANTHROPIC_START_USAGE
CACHE_5M = START["cache_creation"]["ephemeral_5m_input_tokens"]
CACHE_1H = START["cache_creation"]["ephemeral_1h_input_tokens"]
ANTHROPIC_TOTAL_INPUT = (
    START["input_tokens"] + START["cache_read_input_tokens"] + CACHE_5M + CACHE_1H
)


def anthropic_client(proxy, api_key, base: str = "") -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=f"{proxy.url}{base}",
        api_key="sk-ant-test",
        max_retries=0,
        default_headers={"x-aispendtrack-key": api_key.raw},
    )


def assert_anthropic_usage(event) -> None:
    assert event.input_tokens == ANTHROPIC_TOTAL_INPUT  # cache reads and writes added in
    assert event.cached_input_tokens == START["cache_read_input_tokens"]
    assert event.cache_write_tokens == CACHE_5M
    assert event.cache_write_1h_tokens == CACHE_1H
    assert event.output_tokens == fake.ANTHROPIC_FINAL_OUTPUT  # the latest cumulative count
    assert event.response_model == "claude-sonnet-4-6-20260101"


def test_anthropic_create_and_stream(proxy, api_key, fake_provider):
    sdk = anthropic_client(proxy, api_key)
    message = sdk.messages.create(
        model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.content[0].text == "".join(fake.WORDS)
    upstream = fake_provider.last()
    assert upstream.path == "/v1/messages"
    # The provider key passes through whichever way the SDK sends it.
    assert "sk-ant-test" in (upstream.header("x-api-key") or upstream.header("authorization"))
    assert upstream.header("anthropic-version")  # the SDK's version header passes through

    with sdk.messages.stream(
        model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "".join(fake.WORDS)
    assert final.usage.output_tokens == fake.ANTHROPIC_FINAL_OUTPUT

    plain, streamed = proxy.events(2)
    assert (plain.streamed, streamed.streamed) == (False, True)
    for event in (plain, streamed):
        assert event.provider == "anthropic" and event.endpoint == "/v1/messages"
        assert event.model == "claude-sonnet-4-6" and event.status == Status.SUCCESS
        assert_anthropic_usage(event)
    assert plain.upstream_request_id == "req_up_ant"


def test_anthropic_explicit_prefix_and_error_shape(proxy, api_key, fake_provider):
    sdk = anthropic_client(proxy, api_key, base="/anthropic")
    sdk.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[])
    assert fake_provider.last().path == "/v1/messages"
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk.messages.create(
            model="claude-haiku-4-5",
            max_tokens=8,
            messages=[],
            extra_headers={"x-fake-status": "429"},
        )
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    ok, limited = proxy.events(2)
    assert ok.status == Status.SUCCESS and limited.status == Status.RATE_LIMITED


def gemini_post(proxy, api_key, path: str, **kwargs) -> httpx.Response:
    return httpx.post(
        f"{proxy.url}/gemini/v1beta/models/gemini-2.5-flash:{path}",
        json={"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]},
        headers={"x-aispendtrack-key": api_key.raw, "x-goog-api-key": "goog-test"},
        **kwargs,
    )


def assert_gemini_usage(event) -> None:
    thoughts = fake.GEMINI_USAGE["thoughtsTokenCount"]
    assert event.provider == "gemini" and event.model == "gemini-2.5-flash"
    assert event.input_tokens == fake.GEMINI_USAGE["promptTokenCount"]
    assert event.output_tokens == fake.GEMINI_USAGE["candidatesTokenCount"] + thoughts
    assert event.reasoning_tokens == thoughts
    assert event.cached_input_tokens == fake.GEMINI_USAGE["cachedContentTokenCount"]
    assert event.response_model == "gemini-2.5-flash"


def test_gemini_native_and_stream(proxy, api_key, fake_provider):
    plain = gemini_post(proxy, api_key, "generateContent")
    assert plain.status_code == 200
    assert plain.json()["candidates"][0]["content"]["parts"][0]["text"] == fake.WORDS[-1]
    assert fake_provider.last().header("x-goog-api-key") == "goog-test"

    with httpx.stream(
        "POST",
        f"{proxy.url}/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=k1",
        json={"contents": []},
        headers={"x-aispendtrack-key": api_key.raw},
    ) as streamed:
        body = b"".join(streamed.iter_bytes())
    assert body.count(b"data: ") == len(fake.WORDS)
    assert fake_provider.last().query == "alt=sse&key=k1"  # the Gemini key passes through

    array = gemini_post(proxy, api_key, "streamGenerateContent")  # no alt=sse: a JSON array
    assert len(array.json()) == len(fake.WORDS)

    events = proxy.events(3)
    assert [e.streamed for e in events] == [False, True, True]
    for event in events:
        assert_gemini_usage(event)
    assert all("key=" not in e.endpoint for e in events)  # the query (and its key) is not stored


def test_openai_compatible_provider_registered_by_staff(proxy, api_key, fake_provider):
    base_url = f"{fake_provider.url}/compat"  # the upstream root, without /v1
    registered = register_provider("groqish", base_url)
    try:
        sdk = openai.OpenAI(
            base_url=f"{proxy.url}/groqish/v1",
            api_key="gsk-test",
            max_retries=0,
            default_headers={"x-aispendtrack-key": api_key.raw},
        )
        answer = sdk.chat.completions.create(model="llama-3.3-70b", messages=[])
        assert answer.usage.prompt_tokens == fake.CHAT_USAGE["prompt_tokens"]
        assert fake_provider.last().path == "/compat/v1/chat/completions"
        [event] = proxy.events(1)
        assert (event.provider, event.model) == ("groqish", "llama-3.3-70b")
        assert event.input_tokens == fake.CHAT_USAGE["prompt_tokens"]
    finally:
        registered()

    unknown = httpx.post(
        f"{proxy.url}/nosuch/v1/chat/completions",
        json={},
        headers={"x-aispendtrack-key": api_key.raw},
    )
    assert unknown.status_code == 404
    assert "nosuch" in unknown.json()["error"]["message"]


def register_provider(slug: str, base_url: str):
    """A Provider row, as staff add one in admin; the engine's snapshot carries it."""
    row = Provider.objects.create(slug=slug, name=slug, base_url=base_url, api_style="openai")
    engine.ensure_fresh(force=True)

    def remove() -> None:
        row.delete()
        engine.ensure_fresh(force=True)

    return remove
