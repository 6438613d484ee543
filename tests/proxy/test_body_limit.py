"""AISPENDTRACK_MAX_BODY_MB: a larger body is refused with 413 in the caller's
provider shape, never forwarded, and recorded in the ledger."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest
from django.test import override_settings

from analytics.models import Status

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LIMIT_MB = 0.01  # 10,485 bytes
BIG = "x" * 20_000


def test_an_openai_body_over_the_limit_is_413_in_openai_shape_and_recorded(
    proxy, api_key, fake_provider
):
    client = openai.OpenAI(
        base_url=f"{proxy.url}/v1",
        api_key="sk-x",
        max_retries=0,
        default_headers={"x-aispendtrack-key": api_key.raw, "x-customer-id": "big-co"},
    )
    with override_settings(AISPENDTRACK_MAX_BODY_MB=LIMIT_MB):
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": BIG}]
            )
        # Under the limit still goes through.
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 413
    assert "AISPENDTRACK_MAX_BODY_MB" in caught.value.body["message"]
    assert caught.value.body["type"] == "invalid_request_error"
    assert len(fake_provider.received) == 1  # only the small call was forwarded
    events = proxy.events(2)
    refused = [event for event in events if event.http_status == 413]
    assert len(refused) == 1
    assert refused[0].status == Status.CLIENT_ERROR
    assert refused[0].customer_id == "big-co"


def test_an_anthropic_chunked_body_over_the_limit_is_413_in_anthropic_shape(
    proxy, api_key, fake_provider
):
    """No Content-Length: the limit is counted as the chunks arrive."""

    def chunks():
        yield b'{"model": "claude-3-5-haiku-latest", "max_tokens": 5, '
        yield b'"messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"y" * 1000
        yield b'"}]}'

    with override_settings(AISPENDTRACK_MAX_BODY_MB=LIMIT_MB):
        response = httpx.post(
            f"{proxy.url}/v1/messages",
            content=chunks(),
            headers={"x-aispendtrack-key": api_key.raw, "content-type": "application/json"},
        )
    assert response.status_code == 413
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "request_too_large"
    assert fake_provider.received == []
    assert [event.http_status for event in proxy.events(1)] == [413]


def test_the_anthropic_sdk_sees_its_own_error_class(proxy, api_key):
    client = anthropic.Anthropic(
        base_url=proxy.url,
        api_key="sk-ant-x",
        max_retries=0,
        default_headers={"x-aispendtrack-key": api_key.raw},
    )
    with (
        override_settings(AISPENDTRACK_MAX_BODY_MB=LIMIT_MB),
        pytest.raises(anthropic.APIStatusError) as caught,
    ):
        client.messages.create(
            model="claude-3-5-haiku-latest",
            max_tokens=5,
            messages=[{"role": "user", "content": BIG}],
        )
    assert caught.value.status_code == 413
    assert caught.value.body["error"]["type"] == "request_too_large"
