"""Hypothesis over the proxy's header and body parsing, against the fake provider.

Whatever arrives (arbitrary bytes in tag headers, arbitrary JSON or non-JSON
bodies on every route, gzip cut short either way), the answer is a 4xx in
the provider's shape from the proxy or a call forwarded to the provider,
never a 5xx of the proxy's own, and the proxy logs no failure.
"""

from __future__ import annotations

import gzip
import json
import logging
import socket

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROUTES = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/audio/transcriptions",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/openai/v1/chat/completions",
    "/anthropic/v1/messages",
    "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
    "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Objects shaped like requests, so the fields the adapters read get odd values.
request_objects = st.fixed_dictionaries(
    {},
    optional={
        "model": json_values | st.text(max_size=40),
        "stream": json_values,
        "stream_options": json_values,
        "messages": json_values,
        "input": json_values,
        "contents": json_values,
    },
)
bodies = st.one_of(
    request_objects.map(lambda value: json.dumps(value).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=300),
    request_objects.map(lambda value: gzip.compress(json.dumps(value).encode())[:12]),
    st.sampled_from(
        [b"", b"{", b'{"model": "gpt-4o", "stream": true', b"\xff\xfe{}", b"[" * 5000, b"{}" * 3]
    ),
)
content_types = st.sampled_from(
    [
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "",
    ]
)


class Checker:
    """Sends one fuzzed request and says what was wrong with the answer, if anything."""

    def __init__(self, proxy, fake_provider, key: str):
        self.proxy, self.fake, self.key = proxy, fake_provider, key
        self.problems: list[str] = []

    def judge(self, what: str, status: int, body: bytes, content_type: str, forwarded: bool):
        if status >= 500 and (not forwarded or b"aispendtrack_" in body):
            self.problems.append(f"{status} {what}: {body[:200]!r}")
        elif 400 <= status < 500 and not forwarded and content_type.startswith("application/json"):
            error = json.loads(body).get("error")
            if not isinstance(error, dict) or "message" not in error:
                self.problems.append(f"{status} not in a provider's shape {what}: {body[:200]!r}")


@pytest.fixture
def checker(proxy, fake_provider, api_key, caplog):
    caplog.set_level(logging.WARNING, logger="aispendtrack.proxy")
    found = Checker(proxy, fake_provider, api_key.raw)
    yield found
    failures = [r.getMessage() for r in caplog.records if r.name == "aispendtrack.proxy"]
    assert failures == [], failures[:5]


def test_bodies_on_every_route(checker):
    with httpx.Client(base_url=checker.proxy.url, timeout=30) as http:

        @FUZZ
        @given(
            route=st.sampled_from(ROUTES),
            body=bodies,
            content_type=content_types,
            encoding=st.sampled_from([None, "gzip"]),
        )
        def probe(route, body, content_type, encoding):
            headers = {"x-aispendtrack-key": checker.key}
            if content_type:
                headers["content-type"] = content_type
            if encoding:
                headers["content-encoding"] = encoding
            before = len(checker.fake.received)
            response = http.post(route, content=body, headers=headers)
            forwarded = len(checker.fake.received) > before
            checker.judge(
                f"POST {route} {body[:60]!r}",
                response.status_code,
                response.content,
                response.headers.get("content-type", ""),
                forwarded,
            )

        probe()
    assert checker.problems == [], checker.problems[:10]


def _raw_request(port: int, head: bytes, body: bytes) -> tuple[int, bytes, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head_part, _, rest = data.partition(b"\r\n\r\n")
        lines = head_part.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(b":") for line in lines[1:])
        )
        length = int(headers.get(b"content-length", b"0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, rest, headers.get(b"content-type", b"").decode("latin-1")


# Header bytes: anything but CR, LF and NUL (which end or break the header line).
header_bytes = st.binary(max_size=300).map(
    lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"")
)
TAGS = [b"x-customer-id", b"x-feature", b"x-trace-id", b"x-environment", b"x-property-plan"]


def test_arbitrary_bytes_in_tag_headers(checker):
    body = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}'

    @FUZZ
    @given(
        tags=st.lists(st.tuples(st.sampled_from(TAGS), header_bytes), min_size=1, max_size=4),
        properties=st.lists(
            st.tuples(st.text("abcdefghijklmnopqrstuvwxyz-_0123456789", max_size=80), header_bytes),
            max_size=25,
        ),
    )
    def probe(tags, properties):
        lines = [
            b"POST /v1/chat/completions HTTP/1.1",
            b"host: proxy.test",
            b"x-aispendtrack-key: " + checker.key.encode(),
            b"content-type: application/json",
            b"content-length: " + str(len(body)).encode(),
            b"connection: close",
        ]
        lines += [name + b": " + value for name, value in tags]
        lines += [b"x-property-" + name.encode() + b": " + value for name, value in properties]
        before = len(checker.fake.received)
        status, answer, content_type = _raw_request(
            checker.proxy.port, b"\r\n".join(lines) + b"\r\n\r\n", body
        )
        forwarded = len(checker.fake.received) > before
        checker.judge(f"tags {tags[:2]!r}", status, answer, content_type, forwarded)

    probe()
    assert checker.problems == [], checker.problems[:10]


@pytest.mark.parametrize("cut", [0, 5, 10, 20, 40])
def test_truncated_gzip_answers_are_relayed_and_recorded(proxy, api_key, cut):
    response = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        headers={
            "x-aispendtrack-key": api_key.raw,
            "accept-encoding": "gzip",
            "x-fake-gzip": "1",
            "x-fake-gzip-cut": str(cut),
        },
    )
    assert response.status_code == 200  # the provider's bytes, passed on as they came
    [event] = proxy.events(1)
    assert event.http_status == 200 and event.input_tokens == 0  # usage unreadable: zero


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize("style", ["openai", "anthropic", "gemini"])
def test_deeply_nested_bodies_are_not_json_not_a_crash(style):
    from proxy.adapters import ADAPTERS

    deep = b"[" * 100_000
    facts = ADAPTERS[style].inspect_request(
        method="POST",
        path="/v1/chat/completions",
        query="",
        body=deep,
        content_type="application/json",
    )
    assert facts.model == "" and facts.body == deep  # forwarded as sent
