"""A fast fake OpenAI and Anthropic for the proxy benchmarks: canned answers.

A chat completion, or (`/v1/messages`) an Anthropic message; with
`"stream":true` in the body, the same answer as server-sent events (chunked,
one chunk an event; OpenAI's usage chunk when include_usage is asked, as the
proxy does). Raw asyncio + httptools on uvloop, keep-alive, no framework: it
must be much faster than the proxy so the benchmark measures the proxy.
Run: python -m bench.fake_upstream PORT
"""

from __future__ import annotations

import asyncio
import json
import sys

import httptools
import uvloop

BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi!", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 3,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
    },
    separators=(",", ":"),
).encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"x-request-id: req_bench\r\ncontent-length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


def _compact(value: dict) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


ANTHROPIC_USAGE = {"input_tokens": 12, "output_tokens": 3, "cache_read_input_tokens": 0}
ANTHROPIC_BODY = _compact(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "text", "text": "Hi!"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": ANTHROPIC_USAGE,
    }
)


def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }


OPENAI_EVENTS = [
    b"data: " + _compact(chunk) + b"\n\n"
    for chunk in (
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Hi!"}),
        _chunk({}, "stop"),
        {**_chunk({}), "choices": [], "usage": json.loads(BODY)["usage"]},
    )
] + [b"data: [DONE]\n\n"]
ANTHROPIC_EVENTS = [
    b"event: " + str(event["type"]).encode() + b"\ndata: " + _compact(event) + b"\n\n"
    for event in (
        {
            "type": "message_start",
            "message": {
                **json.loads(ANTHROPIC_BODY),
                "content": [],
                "stop_reason": None,
                "usage": {**ANTHROPIC_USAGE, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi!"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 3},
        },
        {"type": "message_stop"},
    )
]


def _answer(body: bytes, request_id: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"request-id: "
        + request_id
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def _stream(events: list[bytes]) -> list[bytes]:
    """The head, then one HTTP chunk an event, then the last chunk."""
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
        b"cache-control: no-cache\r\nx-request-id: req_bench\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )
    return [head, *(b"%x\r\n%s\r\n" % (len(event), event) for event in events), b"0\r\n\r\n"]


RESPONSES = {
    ("openai", False): [RESPONSE],
    ("anthropic", False): [_answer(ANTHROPIC_BODY, b"req_bench")],
    ("openai", True): _stream(OPENAI_EVENTS),
    ("anthropic", True): _stream(ANTHROPIC_EVENTS),
}


class CannedHttp(asyncio.Protocol):
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body = b""

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.body = b"", b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        provider = "anthropic" if self.url.startswith(b"/v1/messages") else "openai"
        # The proxy asks OpenAI streams for their usage chunk: always sent here.
        for part in RESPONSES[provider, b'"stream":true' in self.body]:
            self.transport.write(part)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(CannedHttp, "127.0.0.1", port, backlog=1024)
    print(f"fake upstream on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
