"""A stream whose terminal event reached the client is a success, even when the
client hangs up before the provider closes; a malformed usage block from a
provider never changes the client's answer and is recorded as unknown usage."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from analytics.models import Status
from proxy.adapters import ADAPTERS
from tests.proxy import fake_provider as fake

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The fake provider waits this long after its last event before closing: the
# client has everything and leaves first.
PAUSE = {"x-fake-pause-end": "3"}


def test_openai_sdk_leaving_at_done_is_a_success(proxy, api_key):
    client = openai.OpenAI(
        base_url=f"{proxy.url}/v1",
        api_key="sk-test",
        max_retries=0,
        default_headers={"x-aispendtrack-key": api_key.raw, **PAUSE},
    )
    with client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], stream=True
    ) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "".join(fake.WORDS)

    [event] = proxy.events(1)
    assert (event.status, event.streamed) == (Status.SUCCESS, True)
    assert event.input_tokens == fake.CHAT_USAGE["prompt_tokens"]
    assert event.output_tokens == fake.CHAT_USAGE["completion_tokens"]


def _read_until(proxy, api_key, path: str, body: dict, marker: bytes) -> bytes:
    """Read the stream until `marker`, then hang up (as an SDK does)."""
    seen = b""
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST",
            f"{proxy.url}{path}",
            json=body,
            headers={"x-aispendtrack-key": api_key.raw, **PAUSE},
        ) as response,
    ):
        for chunk in response.iter_raw():
            seen += chunk
            if marker in seen:
                break
    return seen


def test_anthropic_client_leaving_at_message_stop_is_a_success(proxy, api_key):
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [], "stream": True}
    _read_until(proxy, api_key, "/v1/messages", body, b"message_stop")
    [event] = proxy.events(1)
    assert event.status == Status.SUCCESS
    assert event.output_tokens == fake.ANTHROPIC_FINAL_OUTPUT


def test_a_client_leaving_before_the_terminal_event_is_a_cancel(proxy, api_key):
    body = {"model": "gpt-4o", "messages": [], "stream": True}
    headers = {"x-fake-sleep": "0.3"}
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST",
            f"{proxy.url}/v1/chat/completions",
            json=body,
            headers={"x-aispendtrack-key": api_key.raw, **headers},
        ) as response,
    ):
        next(response.iter_raw())
    [event] = proxy.events(1)
    assert event.status == Status.CANCELLED


def test_gemini_malformed_usage_reaches_the_client_unchanged(proxy, api_key):
    malformed = {"promptTokensDetails": 5, "candidatesTokenCount": "many"}
    response = httpx.post(
        f"{proxy.url}/gemini/v1beta/models/gemini-2.5-flash:generateContent",
        json={"contents": []},
        headers={"x-aispendtrack-key": api_key.raw, "x-fake-usage": json.dumps(malformed)},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["usageMetadata"]["promptTokensDetails"] == 5
    [event] = proxy.events(1)
    assert event.status == Status.SUCCESS
    # The readable counts still count; the odd fields count nothing.
    assert event.input_tokens == fake.GEMINI_USAGE["promptTokenCount"]
    assert event.output_tokens == fake.GEMINI_USAGE["thoughtsTokenCount"]


MALFORMED_USAGE: list[object] = [
    None,
    5,
    "x",
    [],
    [1, 2],
    {"promptTokensDetails": 5},
    {"promptTokensDetails": "AUDIO"},
    {"promptTokensDetails": [None, 1, {"modality": "AUDIO", "tokenCount": "9"}]},
    {"prompt_tokens": "7", "prompt_tokens_details": 3, "completion_tokens_details": []},
    {"input_tokens": None, "input_tokens_details": "x", "output_tokens_details": 4},
    {"cache_creation": 5, "cache_read_input_tokens": [], "input_tokens": 10**30},
    {"cache_creation": {"ephemeral_5m_input_tokens": {}}},
]


@pytest.mark.parametrize("style", sorted(ADAPTERS))
@pytest.mark.parametrize("usage", MALFORMED_USAGE, ids=lambda u: json.dumps(u)[:40])
def test_no_adapter_raises_on_a_malformed_usage_block(style, usage):
    adapter = ADAPTERS[style]
    for key in ("usage", "usageMetadata"):
        body = json.dumps({"model": "m", key: usage, "type": "message"}).encode()
        adapter.observe_body(body)
        adapter.observe_tail(body)
        tap = adapter.Tap()
        for event_type in ("message_start", "message_delta"):
            event = {"type": event_type, "message": {"usage": usage}, key: usage}
            tap.feed(b"data: " + json.dumps(event).encode() + b"\n\n")
        tap.finish()
