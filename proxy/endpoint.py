"""The proxy endpoint: authenticate, forward unchanged, relay, record.

Plain ASGI (no Django request, no middleware). A warm key costs no I/O; the
body is forwarded as received (except the one include_usage addition); the
response is relayed as it arrives; each call's record is handed to the
ledger writer process (proxy.handoff) before its last bytes go out, never
written to the DB from here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from django.conf import settings
from yarl import URL

from accounts.selectors import aapi_key_authenticate, api_key_known
from analytics.models import Status
from config.httpguard import HANGUP
from proxy import errors
from proxy.adapters import ADAPTERS
from proxy.calls import Call, call_record
from proxy.gates import Refusal
from proxy.headers import TagError, parse_tags, split_request_headers, upstream_accept_encoding
from proxy.relay import answer_error, answer_refusal, relay_response
from proxy.routing import Route, has_dot_segment
from proxy.runtime import ProxyRuntime
from proxy.upstream import UpstreamFailed, open_upstream

logger = logging.getLogger("aispendtrack.proxy")


async def handle(runtime: ProxyRuntime, route: Route, scope: dict[str, Any], receive, send):
    split = split_request_headers(scope["headers"])
    style = route.style
    if has_dot_segment(route.path):
        message = errors.DOT_SEGMENT.format(path=route.path[:200])
        return await answer_error(send, style, 400, message, "aispendtrack_bad_path")
    if not split.key:
        return await answer_error(send, style, 401, errors.KEY_MISSING, "aispendtrack_key_missing")
    known, identity = api_key_known(split.key)  # a warm key: no I/O, no timer
    if not known:
        try:
            identity = await _authenticate(split.key)
        except Exception as error:
            _lookup_failed(error)
            message = errors.KEY_UNVERIFIABLE
            return await answer_error(send, style, 503, message, "aispendtrack_busy")
    if identity is None:
        return await answer_error(send, style, 401, errors.KEY_INVALID, "aispendtrack_key_invalid")
    if not identity.has_scope("proxy"):
        return await answer_error(send, style, 403, errors.KEY_NO_SCOPE, "aispendtrack_no_scope")

    call = Call.begin(identity, route)
    try:
        call.tags = parse_tags(split)
    except TagError as error:
        call.http_status = 400
        runtime.record(call_record(call))
        return await answer_error(send, style, 400, str(error), "aispendtrack_bad_tag", call)
    refusal = runtime.admit(call)
    if refusal is not None:
        if not isinstance(refusal, Refusal):  # a gate asks Redis first (near a plan limit)
            refusal = await refusal
        if refusal is not None:  # counted by the runtime, never a ledger event
            return await answer_refusal(send, style, refusal, call)

    try:
        body = await _read_body(receive, scope["headers"], _max_body_bytes())
    except BodyTooLarge:  # refused before anything is forwarded; recorded as a 413
        call.http_status = 413
        runtime.record(call_record(call))
        message = errors.BODY_TOO_LARGE.format(limit=settings.AISPENDTRACK_MAX_BODY_MB)
        close = [(b"connection", b"close")]  # the rest of the body is never read
        return await answer_error(send, style, 413, message, "request_too_large", call, close)
    if body is None:  # the client left before sending its body: nothing was forwarded
        return None
    call.facts = ADAPTERS[style].inspect_request(
        method=scope["method"],
        path=route.path,
        query=scope.get("query_string", b"").decode("latin-1"),
        body=body,
        content_type=split.content_type,
    )
    me = asyncio.current_task()
    hangup = scope.get("extensions", {}).get(HANGUP, {}).get("callbacks")
    if hangup is not None:  # config.httpguard's protocol calls it back: no task per call
        watcher = None
        hangup.append(lambda: _hung_up(call, me))
    else:
        watcher = asyncio.create_task(_watch_disconnect(receive, call, me))
    try:
        await _forward(runtime, call, scope, split, send)
    except asyncio.CancelledError:
        if not call.recorded:
            # A client that hangs up after the terminal event (the OpenAI SDK
            # closes at `data: [DONE]`) got the whole answer: not a cancel.
            status = None if call.delivered else Status.CANCELLED
            runtime.record(call_record(call, status=status))
        if call.client_gone and me is not None:
            # Our own cancellation (the client hung up): handled, not an error
            # for the server to log. Anyone else's cancellation propagates.
            me.uncancel()
            return None
        raise
    except Exception:
        logger.exception("proxy failure on %s %s", scope["method"], route.path)
        if not call.recorded:
            runtime.record(call_record(call, status=Status.UPSTREAM_ERROR))
        if not call.responded:  # nothing sent yet: answer in the provider's shape
            message = errors.PROXY_FAILED.format(request_id=call.request_id)
            await answer_error(send, style, 502, message, "aispendtrack_proxy_error", call)
    finally:
        if watcher is not None:
            watcher.cancel()
        elif hangup:
            hangup.clear()
    return None


_last_lookup_warning = -60.0


def _lookup_failed(error: Exception) -> None:
    """One WARNING a minute at most, without a traceback: an outage must not
    write a stack per call into the log."""
    global _last_lookup_warning
    now = time.monotonic()
    if now - _last_lookup_warning >= 60.0:
        _last_lookup_warning = now
        logger.warning(
            "cold API key lookups fail (%s: %s): the database is unreachable or slow; "
            "answering 503 aispendtrack_busy until it answers",
            type(error).__name__,
            error,
        )


async def _authenticate(raw: str):
    """The key's identity (no I/O when warm). Bounded as a whole: past the
    lookup timeout (+1 s for the shared cache) the caller gets a 503, within
    5 s by default. A failed lookup closed its connection: the next one
    opens a fresh one (the database restarted)."""
    async with asyncio.timeout(settings.AISPENDTRACK_KEY_LOOKUP_TIMEOUT + 1.0):
        return await aapi_key_authenticate(raw)


async def _forward(runtime: ProxyRuntime, call: Call, scope, split, send) -> None:
    route, facts = call.route, call.facts
    headers = split.forward
    encoding = upstream_accept_encoding(split.accept_encoding, identity_only=facts.hide_usage_chunk)
    if encoding is not None:
        headers = [*headers, ("accept-encoding", encoding)]
    query = scope.get("query_string", b"")
    url = route.base_url + route.path + ("?" + query.decode("latin-1") if query else "")
    try:
        response = await open_upstream(
            runtime,
            scope["method"],
            URL(url, encoded=True),
            headers,
            facts.body,
            stream=facts.stream,
        )
    except UpstreamFailed as failure:
        call.http_status = failure.status
        runtime.record(call_record(call))
        message = failure.message(route.provider, runtime)
        return await answer_error(send, route.style, failure.status, message, failure.code, call)
    try:
        await relay_response(runtime, call, response, send)
    finally:
        response.release()
    return None


class BodyTooLarge(Exception):
    """The request body is over AISPENDTRACK_MAX_BODY_MB."""


def _max_body_bytes() -> int:
    return int(settings.AISPENDTRACK_MAX_BODY_MB * 1024 * 1024)


async def _read_body(receive, headers, limit: int) -> bytes | None:
    """The whole request body (provider requests are small JSON); None if the
    client left; BodyTooLarge past `limit` bytes, declared or received."""
    for name, value in headers:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyTooLarge
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            raise BodyTooLarge
        parts.append(part)
        if not message.get("more_body", False):
            return b"".join(parts)


async def _watch_disconnect(receive, call: Call, task: asyncio.Task | None) -> None:
    """Wait for the client to hang up (servers without config.httpguard's hook)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return _hung_up(call, task)


def _hung_up(call: Call, task: asyncio.Task | None) -> None:
    """Cancel the call when the client hangs up, so the upstream request is closed too."""
    if not call.finished and task is not None:
        call.client_gone = True
        task.cancel()
