"""A fake OpenAI / Anthropic / Gemini server on loopback, for end-to-end tests.

Real HTTP (aiohttp.web in its own thread and loop), so the official SDKs and
the proxy's client go through their whole stacks. It answers the way the
providers do (JSON and SSE shapes, usage objects, request-id headers) and
records what it received. Knobs are request headers, which the proxy
forwards like any other:

    x-fake-status: 429       answer this status with the provider's error body
    x-fake-sleep: 0.2        seconds between streamed chunks
    x-fake-step: NAME        send the first chunk, then each next one only when the
                             test calls `release(NAME)` (event-driven streaming tests)
    x-fake-hang: 30          seconds before answering at all
    x-fake-hang-after: 1     stream this many chunks, then go silent
    x-fake-cut: 2            stream this many chunks, then drop the connection
    x-fake-gzip: 1           gzip the JSON body (when the request accepts gzip)
    x-fake-gzip-cut: 20      ... and send only its first 20 bytes (a truncated gzip)
    x-fake-set-cookie: 1     set a cookie, as Cloudflare in front of providers does
    x-fake-usage: {json}     merge these fields into the usage block(s) it reports
    x-fake-pause-end: 2      after the last event (and [DONE]), wait before closing
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import socket
import struct
import threading
from dataclasses import dataclass

from aiohttp import web

# What the fake reports; tests compare the ledger against these.
CHAT_USAGE = {
    "prompt_tokens": 57,
    "completion_tokens": 23,
    "total_tokens": 80,
    "prompt_tokens_details": {"cached_tokens": 12, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 5, "audio_tokens": 0},
}
RESPONSES_USAGE = {
    "input_tokens": 41,
    "input_tokens_details": {"cached_tokens": 8},
    "output_tokens": 17,
    "output_tokens_details": {"reasoning_tokens": 4},
    "total_tokens": 58,
}
EMBEDDING_USAGE = {"prompt_tokens": 9, "total_tokens": 9}
ANTHROPIC_START_USAGE = {
    "input_tokens": 21,
    "cache_creation_input_tokens": 300,
    "cache_read_input_tokens": 1000,
    "cache_creation": {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 100},
    "output_tokens": 1,
}
ANTHROPIC_FINAL_OUTPUT = 31
GEMINI_USAGE = {
    "promptTokenCount": 33,
    "candidatesTokenCount": 14,
    "thoughtsTokenCount": 6,
    "cachedContentTokenCount": 10,
    "totalTokenCount": 53,
}
WORDS = ["Hello", " from", " the", " fake", " provider", "!"]
CHAT_MODEL_ANSWERED = "gpt-4o-mini-2024-07-18"


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self):
        return json.loads(self.body)


def _compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class FakeProvider:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.aborted: list[str] = []  # streams whose client (the proxy) went away
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._steps: dict[str, asyncio.Semaphore] = {}  # x-fake-step gates (loop thread only)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def last(self) -> Received:
        return self.received[-1]

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> FakeProvider:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake provider did not start")
        return self

    def _serve(self, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        loop.run_until_complete(self._runner.setup())
        loop.run_until_complete(web.SockSite(self._runner, sock).start())
        self._ready.set()
        loop.run_forever()

    def stop(self) -> None:
        if self._loop is None:
            return
        assert self._runner is not None and self._thread is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def release(self, step: str) -> None:
        """Let the stream started with `x-fake-step: step` send its next chunk."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(lambda: self._step(step).release())

    def _step(self, name: str) -> asyncio.Semaphore:
        return self._steps.setdefault(name, asyncio.Semaphore(0))

    # --- dispatch ---------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
        except Exception:  # e.g. content-encoding: gzip that does not inflate
            body, unreadable = b"", True
        else:
            unreadable = False
        self.received.append(
            Received(
                request.method,
                request.raw_path.split("?", 1)[0],
                request.raw_path.partition("?")[2],
                [(k.decode(), v.decode()) for k, v in request.raw_headers],
                body,
            )
        )
        hang = float(request.headers.get("x-fake-hang", "0"))
        if hang:
            await asyncio.sleep(hang)
        path = request.path
        style = "anthropic" if "/messages" in path else "gemini" if ":" in path else "openai"
        status = int(request.headers.get("x-fake-status", "200"))
        if status >= 400:
            return self._error(style, status)
        try:
            data = json.loads(body) if body else {}
        except (ValueError, RecursionError):
            return self._error(style, 400)
        if unreadable or not isinstance(data, dict):  # a provider answers 400 to these
            return self._error(style, 400)
        if path.endswith("/chat/completions"):
            if data.get("stream"):
                return await self._chat_stream(request, data)
            return self._json(request, _chat_completion(data), {"x-request-id": "req_up_chat"})
        if path.endswith("/responses"):
            if data.get("stream"):
                return await self._stream(request, _responses_events(data))
            return self._json(request, _response_object(data, "completed"))
        if path.endswith("/embeddings"):
            return self._json(request, _embeddings(data))
        if path.endswith("/models") and request.method == "GET":
            return self._json(request, {"object": "list", "data": [_model("gpt-4o")]})
        if path.endswith("/messages"):
            if data.get("stream"):
                return await self._stream(request, _anthropic_events(data), anthropic=True)
            return self._json(request, _anthropic_message(data), {"request-id": "req_up_ant"})
        if ":streamGenerateContent" in path:
            return await self._stream(request, _gemini_chunks(), gemini=True)
        if ":generateContent" in path:
            return self._json(request, _gemini_chunks()[-1])
        return self._error(style, 404)

    def _json(self, request: web.Request, payload, headers=None) -> web.Response:
        raw = _compact(_with_usage(request, payload))
        headers = {"content-type": "application/json", **(headers or {})}
        if request.headers.get("x-fake-set-cookie"):
            headers["set-cookie"] = "__cf_bm=tenant-a; Path=/; HttpOnly"
        if request.headers.get("x-fake-ratelimit"):  # the provider's own rate-limit headers
            headers["x-ratelimit-limit-requests"] = "500"
            headers["x-ratelimit-remaining-requests"] = "499"
        accepts = request.headers.get("accept-encoding", "")
        if request.headers.get("x-fake-gzip") and "gzip" in accepts:
            raw = gzip.compress(raw)
            headers["content-encoding"] = "gzip"
            if request.headers.get("x-fake-gzip-cut"):
                raw = raw[: int(request.headers["x-fake-gzip-cut"])]
        return web.Response(body=raw, headers=headers)

    def _error(self, style: str, status: int) -> web.Response:
        if style == "anthropic":
            kind = "rate_limit_error" if status == 429 else "api_error"
            payload = {"type": "error", "error": {"type": kind, "message": f"fake {status}"}}
        elif style == "gemini":
            payload = {"error": {"code": status, "message": f"fake {status}", "status": "X"}}
        else:
            payload = {
                "error": {
                    "message": f"fake {status}",
                    "type": "requests" if status == 429 else "server_error",
                    "param": None,
                    "code": "rate_limit_exceeded" if status == 429 else None,
                }
            }
        headers = {"content-type": "application/json", "x-request-id": f"req_up_{status}"}
        if status == 429:
            headers["retry-after"] = "7"
        return web.Response(status=status, body=_compact(payload), headers=headers)

    async def _chat_stream(self, request: web.Request, data) -> web.StreamResponse:
        options = data.get("stream_options") or {}
        chunks = _chat_chunks(data, bool(options.get("include_usage")))
        return await self._stream(request, chunks, done=True)

    async def _stream(self, request, events, *, anthropic=False, gemini=False, done=False):
        sse = request.query.get("alt") == "sse" or not gemini
        response = web.StreamResponse(
            headers={
                "content-type": "text/event-stream; charset=utf-8" if sse else "application/json",
                "cache-control": "no-cache",
                "x-request-id": "req_up_stream",
            }
        )
        await response.prepare(request)
        sleep = float(request.headers.get("x-fake-sleep", "0"))
        hang_after = int(request.headers.get("x-fake-hang-after", "-1"))
        cut = int(request.headers.get("x-fake-cut", "-1"))
        step = request.headers.get("x-fake-step")
        if not sse:  # Gemini without alt=sse streams one JSON array
            await response.write(b"[")
        try:
            for number, event in enumerate(events):
                if number == hang_after:
                    await asyncio.sleep(3600)
                if number == cut:
                    request.transport.close()
                    return response
                if number and sleep:
                    await asyncio.sleep(sleep)
                if number and step:
                    await self._step(step).acquire()
                event = _with_usage(request, event)
                frame = _frame(event, anthropic=anthropic, gemini=gemini, sse=sse)
                await response.write(frame if sse or not number else b",\r\n" + frame)
        except (asyncio.CancelledError, ConnectionResetError):
            self.aborted.append(request.path)
            raise
        if not sse:
            await response.write(b"]")
        if done:
            await response.write(b"data: [DONE]\n\n")
        pause = float(request.headers.get("x-fake-pause-end", "0"))
        if pause:
            try:
                await asyncio.sleep(pause)
            except asyncio.CancelledError:
                self.aborted.append(request.path)
                raise
        await response.write_eof()
        return response


def _with_usage(request: web.Request, payload):
    """The payload with x-fake-usage's fields merged into its usage block."""
    extra = request.headers.get("x-fake-usage")
    if not extra or not isinstance(payload, dict):
        return payload
    for key in ("usage", "usageMetadata"):
        if isinstance(payload.get(key), dict):
            return {**payload, key: {**payload[key], **json.loads(extra)}}
    return payload


def _frame(event, *, anthropic: bool, gemini: bool, sse: bool) -> bytes:
    if gemini:
        return b"data: " + _compact(event) + b"\r\n\r\n" if sse else _compact(event)
    if anthropic or str(event.get("type", "")).startswith("response."):
        return b"event: " + event["type"].encode() + b"\ndata: " + _compact(event) + b"\n\n"
    return b"data: " + _compact(event) + b"\n\n"


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": 1700000000, "owned_by": "openai"}


def _chat_completion(data) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": CHAT_MODEL_ANSWERED,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(WORDS), "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": CHAT_USAGE,
        "system_fingerprint": "fp_fake",
    }


def _chat_chunks(data, include_usage: bool) -> list[dict]:
    def chunk(delta, finish=None) -> dict:
        value = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": CHAT_MODEL_ANSWERED,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:  # as OpenAI does: every chunk then carries "usage": null
            value["usage"] = None
        return value

    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    chunks += [chunk({"content": word}) for word in WORDS]
    chunks.append(chunk({}, "stop"))
    if include_usage:
        last = chunk({})
        last["choices"] = []
        last["usage"] = CHAT_USAGE
        chunks.append(last)
    return chunks


def _response_object(data, status: str) -> dict:
    text = "".join(WORDS)
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": 1700000000,
        "status": status,
        "model": "gpt-4.1-2025-04-14",
        "output": [
            {
                "id": "msg_fake",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": RESPONSES_USAGE if status != "in_progress" else None,
    }


def _responses_events(data) -> list[dict]:
    events = [
        {
            "type": "response.created",
            "sequence_number": 0,
            "response": _response_object(data, "in_progress"),
        }
    ]
    for number, word in enumerate(WORDS, 1):
        events.append(
            {
                "type": "response.output_text.delta",
                "sequence_number": number,
                "item_id": "msg_fake",
                "output_index": 0,
                "content_index": 0,
                "delta": word,
                "logprobs": [],
            }
        )
    events.append(
        {
            "type": "response.completed",
            "sequence_number": len(WORDS) + 1,
            "response": _response_object(data, "completed"),
        }
    )
    return events


def _embeddings(data) -> dict:
    vector = [0.25, -0.5, 0.125]
    embedding: str | list[float]
    if data.get("encoding_format") == "base64":
        embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    else:
        embedding = vector
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": embedding}],
        "model": "text-embedding-3-small",
        "usage": EMBEDDING_USAGE,
    }


def _anthropic_message(data) -> dict:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6-20260101",
        "content": [{"type": "text", "text": "".join(WORDS)}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {**ANTHROPIC_START_USAGE, "output_tokens": ANTHROPIC_FINAL_OUTPUT},
    }


def _anthropic_events(data) -> list[dict]:
    start = _anthropic_message(data)
    start.update(content=[], stop_reason=None, usage=dict(ANTHROPIC_START_USAGE))
    events: list[dict] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}
        for w in WORDS
    ]
    events += [
        {"type": "content_block_stop", "index": 0},
        # Cumulative counts: an early delta, then the final one (the latest wins).
        {
            "type": "message_delta",
            "delta": {"stop_reason": None, "stop_sequence": None},
            "usage": {"output_tokens": 3},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {
                "output_tokens": ANTHROPIC_FINAL_OUTPUT,
                "input_tokens": ANTHROPIC_START_USAGE["input_tokens"],
                "cache_read_input_tokens": ANTHROPIC_START_USAGE["cache_read_input_tokens"],
            },
        },
        {"type": "message_stop"},
    ]
    return events


def _gemini_chunks() -> list[dict]:
    chunks = []
    for number, word in enumerate(WORDS, 1):
        usage = dict(GEMINI_USAGE)
        usage["candidatesTokenCount"] = GEMINI_USAGE["candidatesTokenCount"] * number // len(WORDS)
        chunks.append(
            {
                "candidates": [
                    {
                        "content": {"parts": [{"text": word}], "role": "model"},
                        "index": 0,
                        **({"finishReason": "STOP"} if number == len(WORDS) else {}),
                    }
                ],
                "usageMetadata": usage,
                "modelVersion": "gemini-2.5-flash",
                "responseId": "resp_gemini_fake",
            }
        )
    return chunks
