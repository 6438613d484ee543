"""The hand-off queue: how a web worker gives each call's record to the ledger writer.

The web worker does no ledger work. It appends each record as one JSON line
to its own append-only file `<host>-<pid>-<start>.jsonl` under
AISPENDTRACK_QUEUE_DIR with a single `write(2)` on an O_APPEND descriptor,
before the call's last response bytes are sent (proxy.relay records, then
sends). The line is then in the kernel's page cache: a web worker killed
with SIGKILL right after loses nothing it answered for. The writer process
(`manage.py ledger_writer`, proxy.writer) tails the files into the ledger.

Files are created under a temporary name, locked shared (flock) and only
then renamed into place, and the lock is held for as long as the worker
appends: a writer that can lock a file exclusively knows nobody appends to
it any more (its worker rotated past it, stopped or died), so it may delete
it once written. A worker starts a new file past AISPENDTRACK_QUEUE_FILE_MB.

No fsync here: the writer fdatasyncs files it has not finished each second
(proxy.writer), so a power cut costs at most about a second of calls not yet
in the ledger (README, "Decisions"). A write that fails (disk full) keeps the
lines in memory and retries them with the next record, logged as CRITICAL.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from decimal import Decimal
from pathlib import Path

import orjson

from analytics.records import UsageRecord
from config import fastjson

logger = logging.getLogger("aispendtrack.proxy")

SUFFIX = ".jsonl"
CREATING = ".new"  # a file being created (not yet locked and renamed)


def _decimal_text(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)  # the cost, as UsageRecord.to_json writes it
    raise TypeError


def record_line(record: UsageRecord) -> bytes:
    """One record as the queue stores it: a JSON line (UsageRecord.from_json reads it).

    orjson writes the dataclass itself (~2× faster than building `to_json`'s
    dict first, on the event loop for every call): the same object, with the
    fields in declaration order. Whatever orjson refuses (a lone surrogate,
    an integer past 64 bits, a key that is not text) takes `to_json` and
    fastjson's stdlib fallback, as before."""
    try:
        return orjson.dumps(record, default=_decimal_text, option=orjson.OPT_APPEND_NEWLINE)
    except (orjson.JSONEncodeError, TypeError):
        return fastjson.dumps(record.to_json()) + b"\n"


def queue_file_name() -> str:
    """`<host>-<pid>-<start ns>.jsonl`: unique without coordination, across hosts too."""
    host = socket.gethostname().replace("-", "_")
    return f"{host}-{os.getpid()}-{time.time_ns()}{SUFFIX}"


class HandoffQueue:
    """One web worker's append-only queue file. Event-loop side: never blocks
    beyond a write(2) into the page cache."""

    def __init__(self, directory: Path, *, file_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.file_bytes = max(1, file_bytes)
        self._fd: int | None = None
        self._size = 0
        self._unwritten: list[bytes] = []
        self.path: Path | None = None

    def append(self, record: UsageRecord) -> None:
        """Hand one record off (one write(2)). Never raises."""
        line = record_line(record)
        if self._unwritten:
            self._unwritten.append(line)
            line = b"".join(self._unwritten)
            self._unwritten = []
        try:
            if self._fd is None or self._size >= self.file_bytes:
                self._rotate()
            assert self._fd is not None
            written = os.write(self._fd, line)
            self._size += written
            if written < len(line):  # only a full disk writes short: never split a line
                raise OSError(f"short write ({written} of {len(line)} bytes)")
        except OSError as error:
            self._keep(line, error)

    def close(self) -> None:
        """Stop appending: the lock goes with the descriptor, the file is the writer's."""
        if self._unwritten:
            self._retry_unwritten()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _rotate(self) -> None:
        """Start a new file: created aside, locked shared, then renamed into place,
        so a writer never sees it unlocked."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = queue_file_name()
        creating = self.directory / (name + CREATING)
        fd = os.open(creating, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            os.rename(creating, self.directory / name)
        except OSError:
            os.close(fd)
            raise
        if self._fd is not None:
            os.close(self._fd)  # releases its lock: the writer may finish that file
        self._fd, self._size, self.path = fd, 0, self.directory / name

    def _keep(self, line: bytes, error: OSError) -> None:
        # The file may now end in part of a line: later lines go to a fresh file
        # (the writer skips a cut last line of a finished file).
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if not self._unwritten:
            logger.critical(
                "cannot write usage records to the hand-off queue %s (%s); keeping them "
                "in memory and retrying with each call",
                self.directory,
                error,
            )
        self._unwritten.append(line)

    def _retry_unwritten(self) -> None:
        lines, self._unwritten = b"".join(self._unwritten), []
        try:
            if self._fd is None:
                self._rotate()
            assert self._fd is not None
            os.write(self._fd, lines)
        except OSError as error:
            logger.critical(
                "%d usage records could not be handed off at shutdown (%s): lost",
                lines.count(b"\n"),
                error,
            )
