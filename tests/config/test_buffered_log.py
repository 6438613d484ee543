"""The call log's batching handler: every line arrives, in order, in few writes."""

from __future__ import annotations

import io
import logging
import time

from config.buffered_log import FLUSH_LINES, BufferedStreamHandler


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def logger_with(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test.buffered.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger


def test_lines_are_held_then_written_in_order_in_one_write():
    stream = CountingStream()
    handler = BufferedStreamHandler(stream, flush_seconds=3600)
    log = logger_with(handler)
    for n in range(3):
        log.info("call %d", n)
    assert stream.getvalue() == ""
    handler.flush()
    assert stream.getvalue() == "call 0\ncall 1\ncall 2\n"
    assert stream.writes == 1


def test_a_full_buffer_is_written_at_once():
    stream = CountingStream()
    log = logger_with(BufferedStreamHandler(stream, flush_seconds=3600))
    for n in range(FLUSH_LINES):
        log.info("call %d", n)
    assert stream.getvalue().count("\n") == FLUSH_LINES
    assert stream.writes == 1


def test_held_lines_reach_the_stream_without_more_calls():
    stream = CountingStream()
    handler = BufferedStreamHandler(stream, flush_seconds=0.01)
    log = logger_with(handler)
    log.info("the only call")
    deadline = time.monotonic() + 10
    while "the only call" not in stream.getvalue():
        assert time.monotonic() < deadline, "the flusher never wrote the line"
        time.sleep(0.01)
    handler.close()
    assert stream.getvalue() == "the only call\n"
