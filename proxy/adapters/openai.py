"""OpenAI API style (also every OpenAI-compatible provider).

Chat/legacy completions report `usage` with prompt/completion tokens; the
Responses API and audio transcriptions report input/output tokens; streams end
with a usage chunk (chat, when `stream_options.include_usage` is set) or a
`response.completed|incomplete|failed` event carrying the response's usage.
"""

from __future__ import annotations

import json
import re
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

_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
# With include_usage every chunk carries "usage": null; without it the key is absent.
_USAGE_NULL = re.compile(rb',\s*"usage"\s*:\s*null|"usage"\s*:\s*null\s*,')
_MULTIPART_MODEL = re.compile(rb'name="model"\r\n(?:[^\r\n]*\r\n)*\r\n([^\r\n]{1,200})\r\n')
# Chat's `data: [DONE]`, or the Responses API's last event.
_TERMINAL = re.compile(
    rb'^data: ?\[DONE\]|"type"\s*:\s*"response\.(?:completed|incomplete|failed)"', re.M
)
_INCLUDE_USAGE = b'{"stream_options":{"include_usage":true},'
_UNTOKENED = ("/models", "/files", "/batches", "/fine_tuning", "/vector_stores", "/uploads")


def inspect_request(*, method: str, path: str, query: str, body: bytes, content_type: str):
    """Model and stream flag; adds `stream_options.include_usage` to chat streams."""
    facts = RequestFacts(body=body)
    if method == "GET" or any(part in path for part in _UNTOKENED):
        facts.billable = False
    if not body:
        return facts
    if content_type.startswith("multipart/form-data"):
        match = _MULTIPART_MODEL.search(body[:65536])
        facts.model = match.group(1).decode("utf-8", "replace") if match else ""
        return facts
    data = json_object(body) if len(body) <= LARGE_BODY else None
    if data is not None:
        facts.model = as_str(data.get("model"))
        facts.stream = data.get("stream") is True
    else:
        facts.model, facts.stream = scan_model_and_stream(body)
    if facts.stream and path.endswith("completions"):
        _ask_for_usage(facts, data)
    return facts


def _ask_for_usage(facts: RequestFacts, data: dict[str, Any] | None) -> None:
    """Chat streams report usage only when asked; ask, and remember to hide it."""
    if data is None:
        data = json_object(facts.body)
        if data is None:  # not JSON after all: the provider will answer that
            return
    options = data.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return
    if options is None and "stream_options" not in data:
        # Insert the key after the opening brace: the client's bytes stay as sent.
        start = facts.body.index(b"{")
        facts.body = facts.body[:start] + _INCLUDE_USAGE + facts.body[start + 1 :]
    else:
        data["stream_options"] = {**(options if isinstance(options, dict) else {})}
        data["stream_options"]["include_usage"] = True
        facts.body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    facts.hide_usage_chunk = True


def usage_from(raw: dict[str, Any]) -> Usage:
    """Normalise an OpenAI usage object (chat, completions, embeddings, responses, audio)."""
    if "prompt_tokens" in raw or "completion_tokens" in raw:
        prompt = raw.get("prompt_tokens_details")
        completion = raw.get("completion_tokens_details")
        return Usage(
            input_tokens=as_int(raw, "prompt_tokens"),
            output_tokens=as_int(raw, "completion_tokens"),
            cached_input_tokens=as_int(prompt, "cached_tokens"),
            reasoning_tokens=as_int(completion, "reasoning_tokens"),
            input_audio_tokens=as_int(prompt, "audio_tokens"),
            output_audio_tokens=as_int(completion, "audio_tokens"),
        )
    details = raw.get("input_tokens_details") or raw.get("input_token_details")
    output = raw.get("output_tokens_details")
    return Usage(
        input_tokens=as_int(raw, "input_tokens"),
        output_tokens=as_int(raw, "output_tokens"),
        cached_input_tokens=as_int(details, "cached_tokens"),
        reasoning_tokens=as_int(output, "reasoning_tokens"),
        input_audio_tokens=as_int(details, "audio_tokens"),
    )


def _read(observed: Observed, data: dict[str, Any]) -> None:
    response = data.get("response")
    if isinstance(response, dict):  # Responses API stream events wrap the response
        data = response
    usage = data.get("usage")
    if isinstance(usage, dict):
        observed.usage = usage_from(usage)
    model = as_str(data.get("model"))
    if model:
        observed.response_model = model


def observe_body(body: bytes) -> Observed:
    """Usage and model of a whole JSON response body."""
    observed = Observed()
    data = json_object(body)
    if data is not None:
        _read(observed, data)
    return observed


def observe_tail(tail: bytes) -> Observed:
    """Usage of a body too large to keep: its usage object comes last."""
    observed = Observed()
    usage = object_after_key(tail[-TAIL_BYTES:], b"usage")
    if usage is not None:
        observed.usage = usage_from(usage)
    return observed


class Tap(StreamTap):
    """Chat usage chunk or Responses' final event; optionally hides our usage chunk."""

    def __init__(self, *, hide_usage_chunk: bool = False) -> None:
        super().__init__()
        self.hides = hide_usage_chunk
        self._first = True

    def feed(self, chunk: bytes) -> bytes:
        if not self.hides:
            return super().feed(chunk)
        kept = [
            _USAGE_NULL.sub(b"", event, count=1)
            for event in self._splitter.feed(chunk)
            if not self._is_our_usage_chunk(event)
        ]
        return b"".join(kept)

    def finish(self) -> bytes:
        rest = self._splitter.rest()
        if not rest.strip():
            return rest if self.hides else b""
        if self.hides:
            return b"" if self._is_our_usage_chunk(rest) else _USAGE_NULL.sub(b"", rest, count=1)
        self.on_event(rest)
        return b""

    def on_event(self, event: bytes) -> None:
        self._is_our_usage_chunk(event)

    def _is_our_usage_chunk(self, event: bytes) -> bool:
        """Reads the event; True when it is the usage-only chunk include_usage adds."""
        if _TERMINAL.search(event):
            self.observed.terminal = True
        if self._first:
            self._first = False
            data = json_object(event_fields(event)[1])
            if data is not None:
                _read(self.observed, data)
                return self.hides and _usage_only(data)
        if _USAGE_OBJECT.search(event) is None:
            return False
        data = json_object(event_fields(event)[1])
        if data is None:
            return False
        _read(self.observed, data)
        return self.hides and _usage_only(data)


def _usage_only(data: dict[str, Any]) -> bool:
    return data.get("choices") == [] and isinstance(data.get("usage"), dict)
