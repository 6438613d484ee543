"""Anthropic Messages API style.

Anthropic reports cache reads and cache writes apart from `input_tokens`; the
ledger's input is the total, so they are added in. In a stream,
`message_start` carries the first counts and each `message_delta` the latest
cumulative ones: the latest value of each field wins.
"""

from __future__ import annotations

from typing import Any

from pricing.usage import Usage
from proxy.adapters.base import (
    LARGE_BODY,
    TAIL_BYTES,
    Observed,
    RequestFacts,
    StreamTap,
    as_int,
    as_str,
    json_object,
    object_after_key,
    scan_model_and_stream,
)
from proxy.sse import event_fields


def inspect_request(*, method: str, path: str, query: str, body: bytes, content_type: str):
    facts = RequestFacts(body=body)
    # Token counting is free; model lists and batch lookups use no tokens.
    if method == "GET" or path.endswith("/count_tokens") or "/batches" in path:
        facts.billable = False
    data = json_object(body) if len(body) <= LARGE_BODY else None
    if data is not None:
        facts.model = as_str(data.get("model"))
        facts.stream = data.get("stream") is True
    elif body:
        facts.model, facts.stream = scan_model_and_stream(body)
    return facts


def usage_from(raw: dict[str, Any]) -> Usage:
    """Normalise Anthropic usage: input = uncached + cache reads + cache writes."""
    read = as_int(raw, "cache_read_input_tokens")
    written = as_int(raw, "cache_creation_input_tokens")
    split = raw.get("cache_creation")
    if isinstance(split, dict) and (
        "ephemeral_5m_input_tokens" in split or "ephemeral_1h_input_tokens" in split
    ):
        write_5m = as_int(split, "ephemeral_5m_input_tokens")
        write_1h = as_int(split, "ephemeral_1h_input_tokens")
    else:
        write_5m, write_1h = written, 0
    return Usage(
        input_tokens=as_int(raw, "input_tokens") + read + write_5m + write_1h,
        output_tokens=as_int(raw, "output_tokens"),
        cached_input_tokens=read,
        cache_write_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
    )


def observe_body(body: bytes) -> Observed:
    observed = Observed()
    data = json_object(body)
    if data is not None and data.get("type") != "error":
        if isinstance(data.get("usage"), dict):
            observed.usage = usage_from(data["usage"])
        observed.response_model = as_str(data.get("model"))
    return observed


def observe_tail(tail: bytes) -> Observed:
    observed = Observed()
    usage = object_after_key(tail[-TAIL_BYTES:], b"usage")
    if usage is not None:
        observed.usage = usage_from(usage)
    return observed


class Tap(StreamTap):
    """Reads `message_start` and `message_delta`; every other event passes unread."""

    def __init__(self, **_: Any) -> None:
        super().__init__()
        self._counts: dict[str, Any] = {}

    def on_event(self, event: bytes) -> None:
        if b'"message_stop"' in event:
            self.observed.terminal = True
        elif b'"message_start"' in event:
            data = json_object(event_fields(event)[1])
            message = data.get("message") if data else None
            if isinstance(message, dict):
                self.observed.response_model = as_str(message.get("model"))
                self._merge(message.get("usage"))
        elif b'"message_delta"' in event:
            data = json_object(event_fields(event)[1])
            if data is not None:
                self._merge(data.get("usage"))

    def _merge(self, counts: Any) -> None:
        if not isinstance(counts, dict):
            return
        # Cumulative counts: a later event's value replaces the earlier one.
        self._counts.update({k: v for k, v in counts.items() if v is not None})
        self.observed.usage = usage_from(self._counts)
