"""Usage parsing, pure: provider payloads in, the ledger's token convention out."""

from __future__ import annotations

import json

from pricing.usage import Usage
from proxy.adapters import anthropic, gemini, openai
from proxy.adapters.base import LARGE_BODY, object_after_key


def sse(*events, name: bool = False) -> bytes:
    out = b""
    for event in events:
        if name:
            out += b"event: " + event["type"].encode() + b"\n"
        out += b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
    return out


# --- OpenAI -------------------------------------------------------------------------


def test_openai_chat_usage_keeps_cached_and_reasoning_inside_totals():
    usage = openai.usage_from(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 400, "audio_tokens": 10},
            "completion_tokens_details": {"reasoning_tokens": 200, "audio_tokens": None},
        }
    )
    assert usage == Usage(
        input_tokens=1000,
        output_tokens=300,
        cached_input_tokens=400,
        reasoning_tokens=200,
        input_audio_tokens=10,
    )


def test_openai_responses_usage_and_odd_values():
    usage = openai.usage_from(
        {
            "input_tokens": 50,
            "input_tokens_details": {"cached_tokens": "7"},  # not an int: ignored
            "output_tokens": 20,
            "output_tokens_details": {"reasoning_tokens": 12},
        }
    )
    assert usage == Usage(input_tokens=50, output_tokens=20, reasoning_tokens=12)


def test_openai_request_adds_include_usage_without_touching_other_bytes():
    body = b'{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"h\\u00e9"}]}'
    facts = openai.inspect_request(
        method="POST", path="/v1/chat/completions", query="", body=body, content_type=""
    )
    assert facts.model == "gpt-4o" and facts.stream and facts.hide_usage_chunk
    assert facts.body == b'{"stream_options":{"include_usage":true},' + body[1:]
    assert json.loads(facts.body)["messages"] == json.loads(body)["messages"]


def test_openai_request_merges_existing_stream_options_and_respects_include_usage():
    body = json.dumps({"model": "m", "stream": True, "stream_options": {"x": 1}}).encode()
    facts = openai.inspect_request(
        method="POST", path="/v1/chat/completions", query="", body=body, content_type=""
    )
    assert json.loads(facts.body)["stream_options"] == {"x": 1, "include_usage": True}

    asked = json.dumps(
        {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
    ).encode()
    facts = openai.inspect_request(
        method="POST", path="/v1/chat/completions", query="", body=asked, content_type=""
    )
    assert facts.body is asked and not facts.hide_usage_chunk


def test_openai_request_responses_stream_and_bad_json_are_left_alone():
    body = b'{"model":"gpt-4.1","stream":true,"input":"x"}'
    facts = openai.inspect_request(
        method="POST", path="/v1/responses", query="", body=body, content_type=""
    )
    assert facts.stream and facts.body is body and not facts.hide_usage_chunk
    broken = b'{"model": "gpt-4o", "stream": true'
    facts = openai.inspect_request(
        method="POST", path="/v1/chat/completions", query="", body=broken, content_type=""
    )
    assert facts.body is broken and not facts.hide_usage_chunk


def test_openai_large_body_is_scanned_not_parsed():
    big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * LARGE_BODY}]}
    body = json.dumps(big).encode()
    facts = openai.inspect_request(
        method="POST", path="/v1/embeddings", query="", body=body, content_type=""
    )
    assert (facts.model, facts.stream) == ("gpt-4o", False)


def test_openai_multipart_model():
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF\r\n'
        b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--b--\r\n'
    )
    facts = openai.inspect_request(
        method="POST",
        path="/v1/audio/transcriptions",
        query="",
        body=body,
        content_type="multipart/form-data; boundary=b",
    )
    assert facts.model == "whisper-1"


def chat_chunk(content=None, usage=None, choices=True, with_usage_key=True) -> dict:
    chunk: dict = {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-2024"}
    chunk["choices"] = [{"index": 0, "delta": {"content": content}}] if choices else []
    if with_usage_key:
        chunk["usage"] = usage
    return chunk


def test_openai_tap_hides_the_usage_chunk_it_asked_for():
    usage = {"prompt_tokens": 5, "completion_tokens": 2}
    upstream = sse(chat_chunk("a"), chat_chunk("b"), chat_chunk(None, usage, choices=False))
    upstream += b"data: [DONE]\n\n"
    expected = sse(chat_chunk("a", with_usage_key=False), chat_chunk("b", with_usage_key=False))
    expected += b"data: [DONE]\n\n"
    tap = openai.Tap(hide_usage_chunk=True)
    relayed = b"".join(tap.feed(upstream[i : i + 5]) for i in range(0, len(upstream), 5))
    relayed += tap.finish()
    assert relayed == expected
    assert tap.observed.usage == Usage(input_tokens=5, output_tokens=2)
    assert tap.observed.response_model == "gpt-4o-2024"


def test_openai_tap_passes_chunks_untouched_when_the_client_asked():
    usage = {"prompt_tokens": 5, "completion_tokens": 2}
    upstream = sse(chat_chunk("a"), chat_chunk(None, usage, choices=False)) + b"data: [DONE]\n\n"
    tap = openai.Tap()
    assert tap.feed(upstream[:30]) == upstream[:30]
    assert tap.feed(upstream[30:]) == upstream[30:]
    assert tap.finish() == b""
    assert tap.observed.usage.input_tokens == 5


def test_openai_tap_reads_responses_final_events():
    for final in ("response.completed", "response.incomplete", "response.failed"):
        events = [
            {"type": "response.created", "response": {"model": "gpt-4.1", "usage": None}},
            {"type": "response.output_text.delta", "delta": '"usage": {"input_tokens": 999}'},
            {
                "type": final,
                "response": {"model": "gpt-4.1", "usage": {"input_tokens": 9, "output_tokens": 3}},
            },
        ]
        tap = openai.Tap()
        tap.feed(sse(*events, name=True))
        tap.finish()
        assert tap.observed.usage == Usage(input_tokens=9, output_tokens=3), final


def test_openai_body_and_tail():
    body = json.dumps({"model": "text-embedding-3-small", "usage": {"prompt_tokens": 8}}).encode()
    assert openai.observe_body(body).usage == Usage(input_tokens=8)
    assert openai.observe_body(b"not json").usage is None
    tail = b'0.1, 0.2]}], "usage": {"prompt_tokens": 77, "total_tokens": 77}}'
    assert openai.observe_tail(tail).usage == Usage(input_tokens=77)


# --- Anthropic ----------------------------------------------------------------------


def test_anthropic_input_is_the_total_with_cache_reads_and_writes():
    usage = anthropic.usage_from(
        {
            "input_tokens": 20,
            "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 300,
            "cache_creation": {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 100},
            "output_tokens": 50,
        }
    )
    assert usage == Usage(
        input_tokens=1320,
        output_tokens=50,
        cached_input_tokens=1000,
        cache_write_tokens=200,
        cache_write_1h_tokens=100,
    )
    # Without the 5m/1h split every write counts as a 5-minute write.
    assert anthropic.usage_from({"input_tokens": 1, "cache_creation_input_tokens": 9}) == Usage(
        input_tokens=10, cache_write_tokens=9
    )


def test_anthropic_stream_keeps_the_latest_cumulative_counts():
    events = [
        {
            "type": "message_start",
            "message": {
                "model": "claude-x",
                "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1},
            },
        },
        {"type": "content_block_delta", "delta": {"text": '"message_delta"'}},
        {"type": "message_delta", "usage": {"output_tokens": 7}},
        {"type": "message_delta", "usage": {"output_tokens": 12, "input_tokens": 11}},
        {"type": "message_stop"},
    ]
    tap = anthropic.Tap()
    raw = sse(*events, name=True)
    assert b"".join(tap.feed(raw[i : i + 9]) for i in range(0, len(raw), 9)) == raw
    tap.finish()
    assert tap.observed.usage == Usage(input_tokens=16, output_tokens=12, cached_input_tokens=5)
    assert tap.observed.response_model == "claude-x"


def test_anthropic_count_tokens_is_free_and_errors_have_no_usage():
    facts = anthropic.inspect_request(
        method="POST", path="/v1/messages/count_tokens", query="", body=b"{}", content_type=""
    )
    assert not facts.billable
    error = b'{"type":"error","error":{"type":"overloaded_error","message":"x"}}'
    assert anthropic.observe_body(error).usage is None


# --- Gemini -------------------------------------------------------------------------

GEMINI = {
    "promptTokenCount": 100,
    "candidatesTokenCount": 40,
    "thoughtsTokenCount": 25,
    "cachedContentTokenCount": 60,
    "toolUsePromptTokenCount": 5,
}


def test_gemini_thoughts_are_output_and_reasoning():
    assert gemini.usage_from(GEMINI) == Usage(
        input_tokens=105, output_tokens=65, cached_input_tokens=60, reasoning_tokens=25
    )


def test_gemini_request_facts_from_the_path():
    facts = gemini.inspect_request(
        method="POST",
        path="/v1beta/models/gemini-2.5-pro:streamGenerateContent",
        query="alt=sse",
        body=b"{}",
        content_type="",
    )
    assert (facts.model, facts.stream, facts.billable) == ("gemini-2.5-pro", True, True)
    facts = gemini.inspect_request(
        method="POST",
        path="/v1beta/models/gemini-2.5-pro:countTokens",
        query="",
        body=b"",
        content_type="",
    )
    assert not facts.billable


def test_gemini_stream_last_usage_wins_with_crlf_framing():
    first = {"usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 1}}
    last = {"usageMetadata": GEMINI, "modelVersion": "gemini-2.5-pro-001"}
    raw = b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in (first, last))
    tap = gemini.Tap()
    tap.feed(raw)
    tap.finish()
    assert tap.observed.usage.output_tokens == 65
    assert tap.observed.response_model == "gemini-2.5-pro-001"


def test_gemini_json_array_stream_read_from_its_tail():
    raw = json.dumps([{"usageMetadata": {"promptTokenCount": 1}}, {"usageMetadata": GEMINI}])
    tap = gemini.tail_tap()
    tap.feed(raw.encode())
    tap.finish()
    assert tap.observed.usage.input_tokens == 105
    assert gemini.observe_body(raw.encode()).usage.input_tokens == 105


def test_object_after_key_takes_the_last_object():
    assert object_after_key(b'{"usage": {"a": 1}, "x": {"usage": {"a": 2}}}', b"usage") == {"a": 2}
    assert object_after_key(b'"usage": null', b"usage") is None
