"""Proxied paths with dot segments (literal or percent-encoded) are refused with
a 400 in the route's provider shape, never forwarded."""

from __future__ import annotations

import http.client
import json

import pytest

from proxy.routing import has_dot_segment

DOTTED = [
    "/v1/../admin/",
    "/v1/./chat/completions",
    "/v1/%2e%2e/admin/",
    "/v1/%2E%2e/admin/",
    "/v1/.%2e/admin/",
    "/v1/..%2fadmin/",
    "/v1/..%5cadmin/",
    "/v1/%252e%252e/admin/",
    "/v1/chat/..",
    "/anthropic/v1/../../x",
    "/gemini/v1beta/models/%2e%2e/x:generateContent",
]


@pytest.mark.parametrize("path", DOTTED)
def test_dot_segments_are_found(path):
    assert has_dot_segment(path)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions",
        "/v1/models/gpt-4.1",
        "/v1/files/file...abc",
        "/v1/x%25y",
        "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
        "/v1/..a/b.",
    ],
)
def test_ordinary_paths_pass(path):
    assert not has_dot_segment(path)


def _raw_post(proxy, path: str, key: str) -> tuple[int, dict]:
    """http.client sends the path byte for byte (httpx would normalise it)."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        connection.request(
            "POST",
            path,
            body=b'{"model": "gpt-4o", "messages": []}',
            headers={"x-aispendtrack-key": key, "content-type": "application/json"},
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", DOTTED)
def test_proxy_answers_400_in_the_providers_shape(proxy, api_key, fake_provider, path):
    status, body = _raw_post(proxy, path, api_key.raw)
    assert status == 400
    if path.startswith("/anthropic/"):
        assert body["type"] == "error" and "'..'" in body["error"]["message"]
    elif path.startswith("/gemini/"):
        assert body["error"]["status"] == "INVALID_ARGUMENT"
    else:
        assert body["error"]["code"] == "aispendtrack_bad_path"
    assert fake_provider.received == []
