"""Header handling, tag validation, routing and error shapes (pure)."""

from __future__ import annotations

import json

import pytest

from proxy.errors import error_body
from proxy.headers import (
    TagError,
    parse_tags,
    response_headers,
    split_request_headers,
    upstream_accept_encoding,
)
from proxy.routing import Route, Router, UnknownProvider


def test_split_forwards_everything_but_hop_by_hop_and_ours():
    split = split_request_headers(
        [
            (b"host", b"proxy.local"),
            (b"authorization", b"Bearer sk-1"),
            (b"x-api-key", b"sk-ant"),
            (b"connection", b"keep-alive, x-hop"),
            (b"x-hop", b"1"),
            (b"content-length", b"10"),
            (b"transfer-encoding", b"chunked"),
            (b"content-type", b"application/json"),
            (b"accept-encoding", b"gzip, br"),
            (b"anthropic-beta", b"a"),
            (b"anthropic-beta", b"b"),
            (b"x-aispendtrack-key", b"ask_123"),
            (b"x-customer-id", b"c1"),
            (b"x-property-team", b"t"),
        ]
    )
    assert split.forward == [
        ("authorization", "Bearer sk-1"),
        ("x-api-key", "sk-ant"),
        ("content-type", "application/json"),
        ("anthropic-beta", "a"),
        ("anthropic-beta", "b"),
    ]
    assert split.key == "ask_123"
    assert split.content_type == "application/json"
    assert parse_tags(split).customer_id == "c1"
    assert parse_tags(split).properties == {"team": "t"}


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-trace-id", "é".encode("latin-1"))],
        [(b"x-environment", b"p\x01rod")],
        [(b"x-property-", b"v")],
        [(b"x-property-" + b"n" * 65, b"v")],
    ],
)
def test_bad_tags(headers):
    with pytest.raises(TagError):
        parse_tags(split_request_headers(headers))


def test_tag_values_may_be_utf8_and_exactly_256_long():
    tags = parse_tags(
        split_request_headers([(b"x-feature", "résumé".encode()), (b"x-customer-id", b"c" * 256)])
    )
    assert tags.feature == "résumé" and len(tags.customer_id) == 256


def test_accept_encoding_offers_only_what_we_can_read():
    assert upstream_accept_encoding("gzip, deflate, br, zstd", identity_only=False) == (
        "gzip, deflate"
    )
    assert upstream_accept_encoding("br", identity_only=False) == "identity"
    assert upstream_accept_encoding(None, identity_only=False) is None
    assert upstream_accept_encoding("gzip", identity_only=True) == "identity"


def test_response_headers_drop_hop_by_hop():
    raw = ((b"Content-Type", b"x"), (b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"3"))
    assert response_headers(raw) == [(b"Content-Type", b"x")]


def router(**registered) -> Router:
    return Router(
        openai="https://oa.test/",
        anthropic="https://an.test",
        gemini="https://ge.test",
        providers=registered.get,
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "/v1/chat/completions",
            Route("openai", "openai", "https://oa.test", "/v1/chat/completions"),
        ),
        ("/v1/messages", Route("anthropic", "anthropic", "https://an.test", "/v1/messages")),
        (
            "/v1/messages/count_tokens",
            Route("anthropic", "anthropic", "https://an.test", "/v1/messages/count_tokens"),
        ),
        ("/v1/messagesX", Route("openai", "openai", "https://oa.test", "/v1/messagesX")),
        ("/openai/v1/embeddings", Route("openai", "openai", "https://oa.test", "/v1/embeddings")),
        (
            "/anthropic/v1/messages",
            Route("anthropic", "anthropic", "https://an.test", "/v1/messages"),
        ),
        (
            "/gemini/v1beta/models/g:generateContent",
            Route("gemini", "gemini", "https://ge.test", "/v1beta/models/g:generateContent"),
        ),
        (
            "/groq/v1/chat/completions",
            Route("groq", "openai", "https://api.groq.com/openai", "/v1/chat/completions"),
        ),
        ("/nosuch/v1/chat/completions", UnknownProvider("nosuch")),
        # Django's pages whose second segment happens to be "v1" stay Django's.
        ("/customers/v1/", None),
        ("/models/v1/", None),
        ("/admin/", None),
        ("/api/costs", None),
        ("/", None),
    ],
)
def test_routes(path, expected):
    assert router(groq=("https://api.groq.com/openai", "openai")).resolve(path) == expected


@pytest.mark.parametrize(
    ("style", "status", "check"),
    [
        ("openai", 401, lambda b: b["error"]["type"] == "invalid_request_error"),
        (
            "anthropic",
            504,
            lambda b: b["type"] == "error" and b["error"]["type"] == "timeout_error",
        ),
        ("gemini", 403, lambda b: b["error"]["status"] == "PERMISSION_DENIED"),
    ],
)
def test_error_shapes(style, status, check):
    body = json.loads(error_body(style, status, "do this", "code"))
    assert check(body)
    assert "do this" in json.dumps(body)


def test_reserved_slugs_cover_every_top_level_django_route():
    """A new top-level page must join RESERVED_SLUGS, or `/<page>/v1/…` would
    be taken by the proxy as a provider path."""
    from django.urls import URLResolver, get_resolver

    from pricing.models import RESERVED_SLUGS

    def heads(patterns) -> set[str]:
        found: set[str] = set()
        for pattern in patterns:
            text = str(pattern.pattern)
            if isinstance(pattern, URLResolver) and text == "":
                found |= heads(pattern.url_patterns)
            elif (head := text.split("/")[0]) and "<" not in head:
                found.add(head)
        return found

    django_heads = heads(get_resolver().url_patterns)
    assert "customers" in django_heads  # the walk really reached the included apps
    assert django_heads <= RESERVED_SLUGS, django_heads - RESERVED_SLUGS
