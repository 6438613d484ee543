"""Server-sent events, cut from a byte stream as it arrives (pure, no I/O).

Providers stream SSE: events separated by a blank line, `data:` lines
carrying JSON. The proxy relays the bytes untouched and feeds a copy here;
only when it must hide an event (the usage chunk it asked for itself) does it
relay whole events instead of raw chunks.
"""

from __future__ import annotations

import re

# A blank line ends an event; the spec allows \r\n, \n and \r line endings.
_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class SseSplitter:
    """Feed raw chunks, get back whole events (each with its blank line)."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._pending + chunk if self._pending else chunk
        events: list[bytes] = []
        start = 0
        for match in _BOUNDARY.finditer(data):
            events.append(data[start : match.end()])
            start = match.end()
        self._pending = data[start:]
        return events

    def rest(self) -> bytes:
        """Bytes after the last complete event (a stream cut mid-event)."""
        rest, self._pending = self._pending, b""
        return rest


def event_fields(event: bytes) -> tuple[str, bytes]:
    """(event name, data) of one event; data lines joined by newlines."""
    name = ""
    data: list[bytes] = []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    return name, b"\n".join(data)
