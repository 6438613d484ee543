"""Gemini native API style (`models/<model>:generateContent` and friends).

`usageMetadata` counts thoughts apart from candidates; the ledger counts them
as output (and as reasoning). A stream repeats `usageMetadata` with growing
counts: the last one wins.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from config import fastjson
from pricing.usage import Usage
from proxy.adapters.base import (
    JSON_ERRORS,
    Observed,
    RequestFacts,
    StreamTap,
    TailTap,
    as_int,
    as_str,
    json_object,
)
from proxy.sse import event_fields

_TOKENED = (":generateContent", ":streamGenerateContent", ":embedContent", ":batchEmbedContents")


def model_from_path(path: str) -> str:
    """`/v1beta/models/gemini-2.5-flash:generateContent` → `gemini-2.5-flash`."""
    marker = path.find("models/")
    if marker < 0:
        return ""
    name = path[marker + len("models/") :]
    return name.split(":", 1)[0].split("/", 1)[0]


def inspect_request(*, method: str, path: str, query: str, body: bytes, content_type: str):
    facts = RequestFacts(body=body, model=model_from_path(path))
    facts.stream = ":streamGenerateContent" in path
    facts.billable = any(verb in path for verb in _TOKENED)
    return facts


def usage_from(raw: dict[str, Any]) -> Usage:
    """Normalise usageMetadata: thoughts are output; tool-use prompts are input."""
    thoughts = as_int(raw, "thoughtsTokenCount")
    audio_in = 0
    details = raw.get("promptTokensDetails")
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and detail.get("modality") == "AUDIO":
            audio_in += as_int(detail, "tokenCount")
    return Usage(
        input_tokens=as_int(raw, "promptTokenCount") + as_int(raw, "toolUsePromptTokenCount"),
        output_tokens=as_int(raw, "candidatesTokenCount") + thoughts,
        cached_input_tokens=as_int(raw, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
        input_audio_tokens=audio_in,
    )


def _read(observed: Observed, data: Any) -> None:
    if isinstance(data, list):  # a whole non-SSE stream: a JSON array of responses
        for item in data:
            _read(observed, item)
        return
    if not isinstance(data, dict):
        return
    if isinstance(data.get("usageMetadata"), dict):
        observed.usage = usage_from(data["usageMetadata"])
    model = as_str(data.get("modelVersion"))
    if model:
        observed.response_model = model


def observe_body(body: bytes) -> Observed:
    observed = Observed()
    if body.lstrip().startswith(b"["):
        with contextlib.suppress(*JSON_ERRORS):
            _read(observed, fastjson.loads(body))
        return observed
    _read(observed, json_object(body))
    return observed


def observe_tail(tail: bytes) -> Observed:
    tap = tail_tap()
    tap.feed(tail)
    tap.finish()
    return tap.observed


class Tap(StreamTap):
    def __init__(self, **_: Any) -> None:
        super().__init__()

    def on_event(self, event: bytes) -> None:
        if b'"usageMetadata"' in event or b'"modelVersion"' in event:
            _read(self.observed, json_object(event_fields(event)[1]))
            # The last chunk carries the finish reason along with the final usage.
            if b'"finishReason"' in event and self.observed.usage is not None:
                self.observed.terminal = True


_MODEL_VERSION = re.compile(rb'"modelVersion"\s*:\s*"([^"\\]{1,200})"')


def _read_tail(observed: Observed, usage: dict[str, Any], tail: bytes) -> None:
    observed.usage = usage_from(usage)
    versions = _MODEL_VERSION.findall(tail)
    if versions:
        observed.response_model = versions[-1].decode("utf-8", "replace")


def tail_tap() -> TailTap:
    """For `:streamGenerateContent` without `alt=sse` (a streamed JSON array)."""
    return TailTap(b"usageMetadata", _read_tail)
