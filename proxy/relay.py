"""Relaying the provider's answer to the client, reading usage on the side.

Three shapes:
- streams (SSE, or a streamed Gemini JSON array): bytes go out as they
  arrive; a tap reads usage from a copy (decoded if compressed);
- JSON answers: read whole (they are small), usage read, then sent with
  `x-aispendtrack-request-id` and `x-aispendtrack-cost`; past BUFFER_LIMIT the
  answer is relayed as it arrives and usage read from its tail;
- anything else (audio, images): relayed as it arrives, not read.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import aiohttp

from analytics.models import Status
from config.httpguard import HOLD_HEAD
from proxy import errors
from proxy.adapters import ADAPTERS, Observed
from proxy.adapters.base import TAIL_BYTES
from proxy.calls import Call, call_record
from proxy.decoding import Decoder, decode_body
from proxy.gates import Refusal
from proxy.headers import response_headers
from proxy.lean_http import LeanResponse
from proxy.upstream import UpstreamFailed

logger = logging.getLogger("aispendtrack.proxy")

BUFFER_LIMIT = 8 * 1024 * 1024
_STREAM_EXTRA = (b"x-accel-buffering", b"no")


JSON_HEADERS = [(b"content-type", b"application/json")]


async def answer_error(
    send,
    style: str,
    status: int,
    message: str,
    code: str,
    call: Call | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send an error the proxy itself raises, in the caller's provider shape."""
    body = errors.error_body(style, status, message, code)
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if call is not None:
        call.responded = True
        headers.append(_request_id_header(call))
    if extra_headers:
        headers.extend(extra_headers)
    start = {"type": "http.response.start", "status": status, "headers": headers, HOLD_HEAD: True}
    await send(start)  # the body follows at once: one write (config.httpguard)
    await send({"type": "http.response.body", "body": body})


async def answer_refusal(send, style: str, refusal: Refusal, call: Call) -> None:
    """A gate's refusal (budget, plan limit): 429 in the provider's shape with
    `Retry-After`, and `x-should-retry: false` when retrying cannot help."""
    extra = [(b"retry-after", str(max(0, refusal.retry_after)).encode())]
    if not refusal.should_retry:
        extra.append((b"x-should-retry", b"false"))
    extra.extend((name.encode(), value.encode()) for name, value in refusal.headers)
    await answer_error(send, style, refusal.status, refusal.message, refusal.code, call, extra)


def _request_id_header(call: Call) -> tuple[bytes, bytes]:
    return (b"x-aispendtrack-request-id", call.request_id.encode())


def _cost_header(cost: Decimal | None) -> list[tuple[bytes, bytes]]:
    if cost is None:
        return []
    return [(b"x-aispendtrack-cost", format(cost, "f").encode())]


async def relay_response(
    runtime, call: Call, response: aiohttp.ClientResponse | LeanResponse, send
) -> None:
    call.http_status = response.status
    call.ttfb_ms = call.elapsed_ms()
    headers = response.headers
    call.upstream_request_id = (
        headers.get("x-request-id") or headers.get("request-id") or headers.get("cf-ray") or ""
    )
    content_type = headers.get("content-type", "").lower()
    encoding = headers.get("content-encoding")
    if content_type.startswith("text/event-stream") or (
        call.facts.stream and response.status < 300
    ):
        call.streamed = True
        await _relay_stream(runtime, call, response, send, content_type, encoding)
    elif content_type.startswith("application/json") or not content_type:
        await _relay_json(runtime, call, response, send, encoding)
    else:
        await _relay_through(runtime, call, response, send, head=b"", tail_reader=None)


async def _relay_stream(runtime, call, response, send, content_type, encoding) -> None:
    adapter = ADAPTERS[call.route.style]
    decoder = Decoder(encoding) if encoding and encoding.lower() != "identity" else None
    if content_type.startswith("text/event-stream"):
        tap = adapter.Tap(hide_usage_chunk=call.facts.hide_usage_chunk and decoder is None)
    else:  # a streamed JSON array (Gemini without alt=sse)
        tap = adapter.tail_tap() if hasattr(adapter, "tail_tap") else adapter.Tap()
    call.observed = tap.observed
    passed = response_headers(response.raw_headers)
    out_headers = [
        *(header for header in passed if header[0].lower() != b"x-accel-buffering"),
        _STREAM_EXTRA,
        _request_id_header(call),
    ]
    call.responded = True
    await send({"type": "http.response.start", "status": call.http_status, "headers": out_headers})
    first = True
    try:
        async for chunk in response.content.iter_any():
            if first:
                call.ttfb_ms, first = call.elapsed_ms(), False
            if tap is None:  # the tap failed earlier: relay untouched, usage unknown
                relayed = chunk
            elif decoder is None:
                relayed, tap = _tap_feed(call, tap, chunk, chunk)
            else:
                _, tap = _tap_feed(call, tap, decoder.feed(chunk), chunk)
                relayed = chunk
            if relayed:
                await send({"type": "http.response.body", "body": relayed, "more_body": True})
                call.delivered = call.observed.terminal
    except TimeoutError:
        return _cut(runtime, call, Status.TIMEOUT, tap)
    except (aiohttp.ClientError, OSError):
        return _cut(runtime, call, Status.UPSTREAM_ERROR, tap)
    rest = _tap_finish(call, tap)
    call.finished = True
    runtime.record(call_record(call))
    await send({"type": "http.response.body", "body": rest, "more_body": False})
    return None


def _tap_feed(call: Call, tap, chunk: bytes, raw: bytes):
    """(bytes to relay, the tap or None). A tap that fails on what the
    provider sent (a malformed usage block, say) is dropped: the client gets
    the provider's bytes unchanged and the call is recorded with unknown usage."""
    try:
        return tap.feed(chunk), tap
    except Exception:
        _usage_unreadable(call)
        return raw, None


def _tap_finish(call: Call, tap) -> bytes:
    if tap is None:
        return b""
    try:
        return tap.finish()
    except Exception:
        _usage_unreadable(call)
        return b""


def _usage_unreadable(call: Call) -> None:
    logger.warning(
        "%s: the usage %s reported could not be read; recorded as unknown usage",
        call.request_id,
        call.route.provider,
        exc_info=True,
    )
    terminal = call.observed.terminal
    call.observed = Observed(terminal=terminal)


def _observe(call: Call, read, data: bytes) -> Observed:
    """An adapter's reading of a whole body or its tail; unknown usage if it fails."""
    try:
        return read(data)
    except Exception:
        _usage_unreadable(call)
        return Observed()


def _cut(runtime, call: Call, status: str, tap) -> None:
    """The provider stopped mid-answer: record what was seen, and end the
    response without completing it so the client sees the cut as well."""
    _tap_finish(call, tap)
    logger.warning("%s stream from %s cut: %s", call.request_id, call.route.provider, status)
    runtime.record(call_record(call, status=status))


async def _relay_json(runtime, call, response, send, encoding) -> None:
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in response.content.iter_any():
            parts.append(chunk)
            size += len(chunk)
            if size > BUFFER_LIMIT:
                return await _relay_through(
                    runtime, call, response, send, head=b"".join(parts), tail_reader=encoding
                )
    except TimeoutError:
        return await _fail_before_start(runtime, call, send, 504)
    except (aiohttp.ClientError, OSError):
        return await _fail_before_start(runtime, call, send, 502)
    body = b"".join(parts)
    if call.facts.billable or call.http_status >= 400:
        observe = ADAPTERS[call.route.style].observe_body
        call.observed = _observe(call, lambda raw: observe(decode_body(raw, encoding)), body)
    call.finished = True
    record = call_record(call)
    runtime.record(record)
    out_headers = [
        *response_headers(response.raw_headers),
        (b"content-length", str(len(body)).encode()),
        _request_id_header(call),
        *_cost_header(record.cost),
    ]
    call.responded = True
    status, headers = call.http_status, out_headers
    start = {"type": "http.response.start", "status": status, "headers": headers, HOLD_HEAD: True}
    await send(start)  # the body follows at once: one write (config.httpguard)
    await send({"type": "http.response.body", "body": body})
    return None


async def _fail_before_start(runtime, call: Call, send, status: int) -> None:
    """The answer's body never fully arrived and nothing was sent yet: say so."""
    call.http_status = status
    runtime.record(call_record(call))
    failure = UpstreamFailed(status, "the answer was cut off")
    message = failure.message(call.route.provider, runtime)
    await answer_error(send, call.route.style, status, message, failure.code, call)


async def _relay_through(runtime, call, response, send, *, head: bytes, tail_reader) -> None:
    """Relay as it arrives without reading it (binary, or JSON past BUFFER_LIMIT)."""
    out_headers = [*response_headers(response.raw_headers), _request_id_header(call)]
    length = response.headers.get("content-length")
    if length is not None:  # the same bytes go out, so the provider's length holds
        out_headers.append((b"content-length", length.encode()))
    call.responded = True
    await send({"type": "http.response.start", "status": call.http_status, "headers": out_headers})
    tail = head[-TAIL_BYTES:]
    if head:
        await send({"type": "http.response.body", "body": head, "more_body": True})
    try:
        async for chunk in response.content.iter_any():
            tail = (tail + chunk)[-TAIL_BYTES:]
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except TimeoutError:
        return runtime.record(call_record(call, status=Status.TIMEOUT))
    except (aiohttp.ClientError, OSError):
        return runtime.record(call_record(call, status=Status.UPSTREAM_ERROR))
    if head and (tail_reader is None or tail_reader.lower() == "identity"):
        call.observed = _observe(call, ADAPTERS[call.route.style].observe_tail, tail)
    call.finished = True
    runtime.record(call_record(call))
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    return None
