"""A log handler that writes lines in batches, for the proxy's line per call.

A StreamHandler writes and flushes each record: one write(2) per proxied
call on the event loop, a fifth of the syscalls a call makes. This handler
formats each record when it is emitted (so a line says what was true then)
and writes what it holds in one write when FLUSH_LINES are waiting, every
FLUSH_SECONDS from a daemon thread, and at exit (logging.shutdown flushes
every handler). A process killed with SIGKILL loses at most FLUSH_SECONDS of
call lines: they are a log, not the ledger (the ledger has its own hand-off,
proxy.handoff).

`info_direct` writes the line per call without building a LogRecord when
the logger's only way out is this handler with the plain format (as
config/settings.py sets it up): the same text, ~4× cheaper; any other
set-up (a filter, another handler, propagation, a test's) takes `logging`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback

FLUSH_LINES = 256
FLUSH_SECONDS = 0.5
# config/settings.py's format: the one `info_direct` knows how to write.
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class BufferedStreamHandler(logging.StreamHandler):
    def __init__(self, stream=None, *, flush_seconds: float = FLUSH_SECONDS) -> None:
        super().__init__(stream)
        self.flush_seconds = flush_seconds
        self.lines: list[str] = []
        self._pid: int | None = None  # the process the flusher thread runs in

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.hold(line)  # Handler.handle holds self.lock around emit

    def hold(self, line: str) -> None:
        """Keep `line` for the next write; the caller holds self.lock."""
        self.lines.append(line)
        if len(self.lines) >= FLUSH_LINES:
            self.flush()
        elif self._pid != os.getpid():  # first line in this process (or after a fork)
            self._pid = os.getpid()
            threading.Thread(target=self._flusher, name="log-flush", daemon=True).start()

    def flush(self) -> None:
        lock = self.lock
        assert lock is not None  # created by Handler.__init__
        with lock:  # an RLock: emit may flush while holding it
            lines, self.lines = self.lines, []
            if lines and self.stream is not None:
                try:
                    self.stream.write(self.terminator.join(lines) + self.terminator)
                    self.stream.flush()
                except Exception:
                    if logging.raiseExceptions:  # as Handler.handleError does
                        traceback.print_exc(file=sys.stderr)

    def close(self) -> None:
        self._pid = None  # the flusher thread stops
        self.flush()
        super().close()

    def _flusher(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            time.sleep(self.flush_seconds)
            self.flush()


class SecondCachedFormatter(logging.Formatter):
    """logging.Formatter whose default `asctime` formats each second once.

    `formatTime` without a datefmt runs localtime() and strftime() for every
    record: ~1.5 % of the event loop's samples under load (py-spy, c=32), for a
    text that changes once a second. Same text as the stock formatter: the
    second's part depends on the whole second only; milliseconds are added
    per record, as logging does.
    """

    _second: int | None = None
    _text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if (
            datefmt is not None
            or self.converter is not time.localtime
            or not self.default_msec_format
        ):
            return super().formatTime(record, datefmt)
        return self.default_asctime(record.created, record.msecs)

    def default_asctime(self, created: float, msecs: float) -> str:
        """The default `asctime` of a record created at `created` (time.time())."""
        second = int(created)
        if second != self._second:
            self._text = time.strftime(self.default_time_format, time.localtime(second))
            self._second = second
        return self.default_msec_format % (self._text, msecs)  # type: ignore[operator]

    def plain(self) -> bool:
        """Whether this formatter writes PLAIN_FORMAT with the default time."""
        return (
            self._fmt == PLAIN_FORMAT
            and type(self._style) is logging.PercentStyle
            and not getattr(self._style, "_defaults", None)
            and self.datefmt is None
            and self.converter is time.localtime
            and bool(self.default_msec_format)
        )


def info_direct(logger: logging.Logger, message: object) -> None:
    """`logger.info("%s", message)`: the same line, without a LogRecord when
    the only place it can go is one BufferedStreamHandler whose formatter
    writes PLAIN_FORMAT (a LogRecord, the handler chain and the format were
    ~9 % of a proxy worker's event loop under load, for one line a call)."""
    handler = _direct_handler(logger)
    if handler is None:
        logger.info("%s", message)
        return
    try:
        text = str(message)
    except Exception:  # what logging does with a message that fails: handleError
        logger.info("%s", message)
        return
    created = time.time()
    msecs = int((created - int(created)) * 1000) + 0.0  # as LogRecord computes it
    formatter, lock = handler.formatter, handler.lock
    assert isinstance(formatter, SecondCachedFormatter) and lock is not None
    line = f"{formatter.default_asctime(created, msecs)} INFO {logger.name} {text}"
    with lock:  # as Handler.handle holds it around emit
        handler.hold(line)


def _direct_handler(logger: logging.Logger) -> BufferedStreamHandler | None:
    """The handler `info_direct` may write to directly, or None: INFO is on,
    nothing filters, nothing propagates, one BufferedStreamHandler, plain format."""
    if logger.disabled or logger.propagate or logger.filters:
        return None
    if not logger.isEnabledFor(logging.INFO):
        return None
    handlers = logger.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if type(handler) is not BufferedStreamHandler or handler.filters:
        return None
    if handler.level > logging.INFO:
        return None
    formatter = handler.formatter
    if type(formatter) is not SecondCachedFormatter or not formatter.plain():
        return None
    return handler
