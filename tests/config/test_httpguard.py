"""config.httpguard's held head: one write for a head marked HOLD_HEAD and
the body after it, byte for byte what uvicorn's own cycle writes in two."""

from __future__ import annotations

import asyncio
import logging

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from config.httpguard import HOLD_HEAD, HeldHeadCycle


class Transport:
    """Records each write and whether it was closed after the writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def cycle_of(kind: type, *, method: str = "POST", keep_alive: bool = True):
    transport = Transport()
    cycle = kind(
        scope={"type": "http", "method": method, "http_version": "1.1"},
        transport=transport,
        flow=FlowControl(transport),  # type: ignore[arg-type]  # a stand-in transport
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test"),
        access_log=False,
        default_headers=[(b"server", b"test")],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )
    return cycle, transport


def answer(cycle, messages) -> None:
    async def run() -> None:
        for message in messages:
            await cycle.send(message)

    asyncio.run(run())


def start(*, hold: bool, length: int | None = 7) -> dict:
    headers = [(b"content-type", b"application/json")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    message = {"type": "http.response.start", "status": 200, "headers": headers}
    return {**message, HOLD_HEAD: True} if hold else message


BODY = {"type": "http.response.body", "body": b'{"a":1}'}


@pytest.mark.parametrize(
    ("method", "keep_alive"), [("POST", True), ("POST", False), ("HEAD", True)]
)
def test_a_held_head_goes_out_with_the_body_in_one_write(method, keep_alive):
    stock, stock_out = cycle_of(RequestResponseCycle, method=method, keep_alive=keep_alive)
    answer(stock, [start(hold=False), BODY if method != "HEAD" else {**BODY, "body": b""}])
    held, held_out = cycle_of(HeldHeadCycle, method=method, keep_alive=keep_alive)
    answer(held, [start(hold=True), BODY if method != "HEAD" else {**BODY, "body": b""}])
    assert len(stock_out.writes) == (2 if method != "HEAD" else 1)
    assert held_out.writes == [b"".join(stock_out.writes)]
    assert (held_out.closed, held.response_complete) == (not keep_alive, True)


def test_an_unmarked_head_or_a_stream_is_written_at_once():
    held, out = cycle_of(HeldHeadCycle)
    answer(held, [start(hold=False)])
    assert len(out.writes) == 1  # the head, before any body
    stream, out = cycle_of(HeldHeadCycle)
    chunk = {"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True}
    answer(stream, [start(hold=False, length=None), chunk])
    assert len(out.writes) == 2  # chunked: head, then each chunk as it comes


def test_a_body_longer_than_its_length_still_fails_and_the_head_is_not_lost():
    held, out = cycle_of(HeldHeadCycle)
    with pytest.raises(RuntimeError, match="longer than Content-Length"):
        answer(held, [start(hold=True, length=3), BODY])
    assert out.writes and out.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
