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


def test_the_second_cached_formatter_writes_what_logging_formatter_writes():
    from config.buffered_log import SecondCachedFormatter

    fmt = "%(asctime)s %(levelname)s %(name)s %(message)s"
    ours, stock = SecondCachedFormatter(fmt), logging.Formatter(fmt)
    base = time.time()
    # Within one second, across seconds, and back again (records are not in order).
    for created in (base, base + 0.001, base + 0.999, base + 1.0, base + 61.5, base + 0.5, 1e9):
        record = logging.LogRecord("aispendtrack.calls", logging.INFO, "", 0, "m %s", ("x",), None)
        record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
        assert ours.format(record) == stock.format(record)
        assert ours.formatTime(record, "%H") == stock.formatTime(record, "%H")


def test_the_call_log_uses_it():
    from config.buffered_log import SecondCachedFormatter

    handlers = logging.getLogger("aispendtrack.calls").handlers
    (ours,) = [h for h in handlers if isinstance(h, BufferedStreamHandler)]
    assert isinstance(ours.formatter, SecondCachedFormatter)


class Message:
    """Formats when asked, as proxy.calls._CallLine does."""

    def __str__(self) -> str:
        return "[AiSpendTrack] org=acme key=ask_abc1 model=gpt-4o tokens=1,234 status=success 3ms"


def test_info_direct_writes_the_line_logging_writes(monkeypatch):
    from config.buffered_log import PLAIN_FORMAT, SecondCachedFormatter, info_direct

    stream = CountingStream()
    handler = BufferedStreamHandler(stream, flush_seconds=3600)
    handler.setFormatter(SecondCachedFormatter(PLAIN_FORMAT))
    log = logger_with(handler)
    stock = logging.Formatter(PLAIN_FORMAT)  # the oracle: logging's own record and format
    base = time.time()
    expected = []
    for created in (base, base + 0.0005, base + 0.999, base + 1.0, base + 61.5, 1e9 + 0.9995):
        monkeypatch.setattr(time, "time", lambda created=created: created)
        info_direct(log, Message())
        record = logging.LogRecord(log.name, logging.INFO, "", 0, "%s", (Message(),), None)
        expected.append(stock.format(record))
    monkeypatch.undo()
    handler.flush()
    assert stream.getvalue() == "".join(line + "\n" for line in expected)


def test_info_direct_leaves_any_other_set_up_to_logging():
    from config.buffered_log import PLAIN_FORMAT, SecondCachedFormatter, info_direct

    stream, seen = CountingStream(), CountingStream()
    handler = BufferedStreamHandler(stream, flush_seconds=3600)
    handler.setFormatter(SecondCachedFormatter(PLAIN_FORMAT))
    log = logger_with(handler)
    log.addFilter(lambda record: record.getMessage() != "dropped")
    info_direct(log, "dropped")  # a filter on the logger is obeyed
    other = logging.StreamHandler(seen)
    log.addHandler(other)
    info_direct(log, "to both")  # a second handler gets the line too
    log.removeHandler(other)
    handler.setFormatter(SecondCachedFormatter("%(levelname)s %(message)s"))
    info_direct(log, "own format")  # another format is logging's to write
    handler.flush()
    lines = stream.getvalue().splitlines()
    assert [line.rsplit(" ", 2)[-2:] for line in lines[:1]] == [["to", "both"]]
    assert lines[1:] == ["INFO own format"]
    assert seen.getvalue() == "to both\n"
