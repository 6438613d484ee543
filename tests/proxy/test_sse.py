"""SSE framing: events cut correctly however the bytes are chunked."""

from __future__ import annotations

import pytest

from proxy.sse import SseSplitter, event_fields

STREAM = b'event: a\ndata: {"x":1}\n\ndata: {"y":2}\r\n\r\ndata: line1\ndata: line2\n\n'


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(STREAM)])
def test_events_survive_any_chunking(size):
    splitter = SseSplitter()
    events = []
    for start in range(0, len(STREAM), size):
        events += splitter.feed(STREAM[start : start + size])
    assert b"".join(events) == STREAM
    assert [event_fields(e) for e in events] == [
        ("a", b'{"x":1}'),
        ("", b'{"y":2}'),
        ("", b"line1\nline2"),
    ]
    assert splitter.rest() == b""


def test_rest_is_an_unterminated_last_event():
    splitter = SseSplitter()
    assert splitter.feed(b"data: 1\n\ndata: 2") == [b"data: 1\n\n"]
    assert splitter.rest() == b"data: 2"
