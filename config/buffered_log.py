"""A log handler that writes lines in batches, for the proxy's line per call.

A StreamHandler writes and flushes each record: one write(2) per proxied
call on the event loop, a fifth of the syscalls a call makes. This handler
formats each record when it is emitted (so a line says what was true then)
and writes what it holds in one write when FLUSH_LINES are waiting, every
FLUSH_SECONDS from a daemon thread, and at exit (logging.shutdown flushes
every handler). A process killed with SIGKILL loses at most FLUSH_SECONDS of
call lines: they are a log, not the ledger (the ledger has its own hand-off,
proxy.handoff).
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
        self.lines.append(line)  # Handler.handle holds self.lock around emit
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
        second = int(record.created)
        if second != self._second:
            self._text = time.strftime(self.default_time_format, time.localtime(second))
            self._second = second
        return self.default_msec_format % (self._text, record.msecs)
