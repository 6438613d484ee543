"""OpenAI SDK → proxy → fake OpenAI: forwarded unchanged, every token counted."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest

from analytics.models import Status
from pricing import engine
from pricing.models import ModelPrice, Provider
from tests.proxy import fake_provider as fake

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def client(proxy, api_key, **headers) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{proxy.url}/v1",
        api_key="sk-test-provider-key",
        max_retries=0,
        default_headers={"x-aispendtrack-key": api_key.raw, **headers},
    )


def test_chat_is_forwarded_and_recorded_with_our_headers(proxy, api_key, fake_provider):
    raw = client(proxy, api_key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == "".join(fake.WORDS)
    request_id = raw.headers["x-aispendtrack-request-id"]
    assert request_id.startswith("req_") and len(request_id) == 36  # second + 96 random bits
    upstream = fake_provider.last()
    assert upstream.path == "/v1/chat/completions"
    assert upstream.header("authorization") == "Bearer sk-test-provider-key"
    assert upstream.header("x-aispendtrack-key") is None
    assert upstream.json()["messages"] == [{"role": "user", "content": "Hi"}]

    [event] = proxy.events(1)
    assert event.request_id == request_id
    assert event.organization_id == api_key.row.organization_id
    assert event.api_key_id == api_key.row.pk
    assert (event.provider, event.endpoint) == ("openai", "/v1/chat/completions")
    assert (event.model, event.response_model) == ("gpt-4o-mini", fake.CHAT_MODEL_ANSWERED)
    assert event.input_tokens == fake.CHAT_USAGE["prompt_tokens"]
    assert event.output_tokens == fake.CHAT_USAGE["completion_tokens"]
    assert event.cached_input_tokens == fake.CHAT_USAGE["prompt_tokens_details"]["cached_tokens"]
    assert (
        event.reasoning_tokens == (fake.CHAT_USAGE["completion_tokens_details"]["reasoning_tokens"])
    )
    assert (event.status, event.http_status, event.streamed) == (Status.SUCCESS, 200, False)
    assert event.upstream_request_id == "req_up_chat"
    assert event.ttfb_ms is not None and event.latency_ms >= event.ttfb_ms
    # The cost header is there exactly when the call was priced.
    assert ("x-aispendtrack-cost" in raw.headers) == event.priced


def test_request_body_bytes_are_forwarded_unchanged(proxy, api_key, fake_provider):
    body = b'{"model": "gpt-4o",  "messages": [{"role":"user","content":"caf\\u00e9 \xc3\xa9"}]}'
    response = httpx.post(
        f"{proxy.url}/v1/chat/completions?api-version=2024-10-21&x=%2F",
        content=body,
        headers={
            "x-aispendtrack-key": api_key.raw,
            "authorization": "Bearer sk-x",
            "content-type": "application/json",
            "openai-organization": "org-123",
            "x-custom": "kept",
        },
    )
    assert response.status_code == 200
    upstream = fake_provider.last()
    assert upstream.body == body
    assert upstream.query == "api-version=2024-10-21&x=%2F"
    assert upstream.header("openai-organization") == "org-123"
    assert upstream.header("x-custom") == "kept"
    # Every header the client sent arrives, ours removed, nothing added.
    hop_by_hop = {"host", "connection"}
    sent = {k: v for k, v in response.request.headers.items() if k not in hop_by_hop}
    del sent["x-aispendtrack-key"]
    arrived = {k.lower(): v for k, v in upstream.headers if k.lower() != "host"}
    assert arrived == sent


def chunks_of(stream) -> list[str]:
    return [chunk.model_dump_json() for chunk in stream]


def test_chat_stream_without_include_usage_looks_exactly_like_direct(proxy, api_key, fake_provider):
    direct = openai.OpenAI(base_url=f"{fake_provider.url}/v1", api_key="sk-test", max_retries=0)
    messages = [{"role": "user", "content": "Hi"}]
    expected = chunks_of(
        direct.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
    )
    direct_raw = httpx.post(
        f"{fake_provider.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": messages, "stream": True},
    ).content

    got = chunks_of(
        client(proxy, api_key).chat.completions.create(
            model="gpt-4o", messages=messages, stream=True
        )
    )
    via_proxy_raw = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": messages, "stream": True},
        headers={"x-aispendtrack-key": api_key.raw},
    )

    assert got == expected
    assert via_proxy_raw.content == direct_raw  # byte for byte, chunk for chunk
    assert via_proxy_raw.headers["x-accel-buffering"] == "no"
    # Upstream was asked for usage all the same.
    assert fake_provider.last().json()["stream_options"] == {"include_usage": True}
    events = proxy.events(2)
    assert len(events) == 2
    for event in events:
        assert event.streamed and event.status == Status.SUCCESS
        assert event.input_tokens == fake.CHAT_USAGE["prompt_tokens"]
        assert event.output_tokens == fake.CHAT_USAGE["completion_tokens"]
        assert event.response_model == fake.CHAT_MODEL_ANSWERED


def test_chat_stream_with_include_usage_keeps_the_usage_chunk(proxy, api_key, fake_provider):
    chunks = list(
        client(proxy, api_key).chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == fake.CHAT_USAGE["prompt_tokens"]
    assert fake_provider.last().json()["stream_options"] == {"include_usage": True}
    [event] = proxy.events(1)
    assert event.output_tokens == fake.CHAT_USAGE["completion_tokens"]
    assert event.cached_input_tokens == fake.CHAT_USAGE["prompt_tokens_details"]["cached_tokens"]


def test_responses_plain_and_stream(proxy, api_key):
    sdk = client(proxy, api_key)
    response = sdk.responses.create(model="gpt-4.1", input="Hi")
    assert response.output_text == "".join(fake.WORDS)
    streamed = [
        event.type for event in sdk.responses.create(model="gpt-4.1", input="Hi", stream=True)
    ]
    assert streamed[0] == "response.created" and streamed[-1] == "response.completed"

    events = proxy.events(2)
    assert [e.streamed for e in events] == [False, True]
    for event in events:
        assert event.endpoint == "/v1/responses"
        assert event.input_tokens == fake.RESPONSES_USAGE["input_tokens"]
        assert event.output_tokens == fake.RESPONSES_USAGE["output_tokens"]
        assert (
            event.cached_input_tokens
            == 8
            == fake.RESPONSES_USAGE["input_tokens_details"]["cached_tokens"]
        )
        assert (
            event.reasoning_tokens
            == fake.RESPONSES_USAGE["output_tokens_details"]["reasoning_tokens"]
        )
        assert event.response_model == "gpt-4.1-2025-04-14"


def test_embeddings_and_models(proxy, api_key):
    sdk = client(proxy, api_key)
    result = sdk.embeddings.create(model="text-embedding-3-small", input="hello")
    assert result.data[0].embedding == [0.25, -0.5, 0.125]
    assert [m.id for m in sdk.models.list()] == ["gpt-4o"]

    embedding, listing = proxy.events(2)
    assert embedding.input_tokens == fake.EMBEDDING_USAGE["prompt_tokens"]
    assert embedding.output_tokens == 0 and embedding.model == "text-embedding-3-small"
    assert listing.endpoint == "/v1/models" and listing.input_tokens == 0
    assert listing.priced and listing.cost == 0  # a model list costs nothing


@pytest.mark.parametrize(
    ("status", "sdk_error", "ledger_status"),
    [
        (429, openai.RateLimitError, Status.RATE_LIMITED),
        (500, openai.InternalServerError, Status.UPSTREAM_ERROR),
        (400, openai.BadRequestError, Status.CLIENT_ERROR),
    ],
)
def test_upstream_errors_pass_through(proxy, api_key, status, sdk_error, ledger_status):
    sdk = client(proxy, api_key, **{"x-fake-status": str(status)})
    with pytest.raises(sdk_error) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == status
    assert caught.value.body["message"] == f"fake {status}"  # the provider's body, untouched
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "7"
    [event] = proxy.events(1)
    assert (event.status, event.http_status) == (ledger_status, status)
    assert event.upstream_request_id == f"req_up_{status}"
    assert event.cost == 0 and event.priced  # a failed call reports no usage: it costs nothing


def test_gzip_body_is_relayed_compressed_and_still_counted(proxy, api_key, fake_provider):
    response = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": []},
        headers={
            "x-aispendtrack-key": api_key.raw,
            "x-fake-gzip": "1",
            "accept-encoding": "gzip, br",
        },
    )
    assert response.headers["content-encoding"] == "gzip"
    assert response.json()["usage"] == fake.CHAT_USAGE  # httpx inflated it
    assert fake_provider.last().header("accept-encoding") == "gzip"  # br: we could not read it
    [event] = proxy.events(1)
    assert event.input_tokens == fake.CHAT_USAGE["prompt_tokens"]


def test_explicit_openai_prefix(proxy, api_key, fake_provider):
    sdk = openai.OpenAI(
        base_url=f"{proxy.url}/openai/v1",
        api_key="sk-test",
        max_retries=0,
        default_headers={"x-aispendtrack-key": api_key.raw},
    )
    sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert fake_provider.last().path == "/v1/chat/completions"
    [event] = proxy.events(1)
    assert event.endpoint == "/v1/chat/completions" and event.provider == "openai"


@pytest.fixture
def fresh_prices():
    """Prices loaded from this test's rows; the engine forgets them afterwards."""
    yield lambda: engine.ensure_fresh(force=True)
    engine.snapshot_reset()


def test_priced_call_carries_its_cost(proxy, api_key, builtin_providers, fresh_prices):
    """A model with a price: the cost header and the ledger agree with the price sheet."""
    ModelPrice.objects.create(
        provider=Provider.objects.get(slug="openai"),
        model_id="gpt-4o-priced",
        input=Decimal("2.5"),
        cache_read=Decimal("1.25"),
        output=Decimal("10"),
    )
    fresh_prices()
    raw = client(proxy, api_key).chat.completions.with_raw_response.create(
        model="gpt-4o-priced", messages=[]
    )
    usage = fake.CHAT_USAGE
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    per_million = (
        (usage["prompt_tokens"] - cached) * Decimal("2.5")
        + cached * Decimal("1.25")
        + usage["completion_tokens"] * Decimal("10")
    )
    expected = per_million / 1_000_000
    assert Decimal(raw.headers["x-aispendtrack-cost"]) == expected
    [event] = proxy.events(1)
    assert event.priced and event.cost == expected
