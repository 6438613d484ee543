"""What the adapters share: request facts, observed usage, the stream tap."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from config import fastjson
from pricing.usage import Usage
from proxy.sse import SseSplitter

# Bodies up to this size are parsed with json.loads (tens of microseconds);
# longer ones (long prompts, base64 images) are scanned for the two fields we
# need, which measured ~20x faster than parsing a 1 MB body.
LARGE_BODY = 256 * 1024
# A response this large is relayed as it arrives and its usage read from the tail.
TAIL_BYTES = 64 * 1024

# A body nested thousands deep ("[[[[…") makes json raise RecursionError, not
# ValueError: both mean "not JSON we can read".
JSON_ERRORS = (ValueError, RecursionError)

_MODEL = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.){0,300})"')
_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true\b')


@dataclass(slots=True)
class RequestFacts:
    """What the proxy needs to know about one request, and what to send upstream."""

    model: str = ""
    stream: bool = False
    body: bytes = b""  # the client's bytes, unless include_usage was added
    hide_usage_chunk: bool = False  # we asked for the usage chunk: drop it on the way back
    billable: bool = True  # False for calls that cost nothing (count_tokens, model lists)


@dataclass(slots=True)
class Observed:
    """What the response told us: usage (None when it reported none) and the model."""

    usage: Usage | None = None
    response_model: str = ""
    # The stream's terminal event was seen ([DONE], message_stop,
    # response.completed, Gemini's last chunk): the answer is complete even if
    # the client hangs up before the provider closes the connection.
    terminal: bool = False


def json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None (not JSON, or not an object)."""
    if not body:
        return None
    try:
        value = fastjson.loads(body)
    except JSON_ERRORS:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return value if isinstance(value, dict) else None


def scan_model_and_stream(body: bytes) -> tuple[str, bool]:
    """The first "model" string and whether "stream": true appears, without parsing.

    For large bodies only: a nested "model" string key could in theory come
    first; SDKs put the top-level one early and schemas give "model" an object.
    """
    match = _MODEL.search(body)
    model = ""
    if match:
        try:
            model = json.loads(b'"' + match.group(1) + b'"')
        except ValueError:
            model = ""
    return model, _STREAM_TRUE.search(body) is not None


def object_after_key(buffer: bytes, key: bytes) -> dict[str, Any] | None:
    """The JSON object that follows the LAST `"key":` in buffer (the tail of a body)."""
    marker = b'"' + key + b'"'
    position = buffer.rfind(marker)
    while position >= 0:
        start = buffer.find(b"{", position + len(marker))
        between = buffer[position + len(marker) : start] if start >= 0 else b""
        if start >= 0 and between.strip() == b":":
            try:
                value, _ = json.JSONDecoder().raw_decode(buffer[start:].decode("utf-8", "replace"))
            except JSON_ERRORS:
                value = None
            if isinstance(value, dict):
                return value
        position = buffer.rfind(marker, 0, position)
    return None


def as_int(mapping: Any, key: str) -> int:
    """A token count from a provider dict; anything odd (None, str, bool) counts 0."""
    if not isinstance(mapping, dict):
        return 0
    value = mapping.get(key)
    return value if type(value) is int and value > 0 else 0


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


class StreamTap:
    """Watches a streamed response for usage; subclasses read the events.

    `feed` returns the bytes to relay: the chunk itself, untouched, unless a
    subclass must hide an event (then it relays whole events as they complete).
    """

    hides = False

    def __init__(self) -> None:
        self.observed = Observed()
        self._splitter = SseSplitter()

    def feed(self, chunk: bytes) -> bytes:
        for event in self._splitter.feed(chunk):
            self.on_event(event)
        return chunk

    def finish(self) -> bytes:
        """End of stream: read a last event that had no blank line after it."""
        rest = self._splitter.rest()
        if rest.strip():
            self.on_event(rest)
        return b""

    def on_event(self, event: bytes) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class TailTap(StreamTap):
    """A non-SSE streamed body (Gemini's JSON array): keep the tail, read usage at the end."""

    def __init__(self, key: bytes, reader) -> None:
        super().__init__()
        self._key = key
        self._reader = reader
        self._tail = b""

    def feed(self, chunk: bytes) -> bytes:
        self._tail = (self._tail + chunk)[-TAIL_BYTES:]
        self.observed.terminal = self._tail.rstrip().endswith(b"]")  # the array closed
        return chunk

    def finish(self) -> bytes:
        found = object_after_key(self._tail, self._key)
        if found is not None:
            self._reader(self.observed, found, self._tail)
        return b""
