"""The ledger writer: the hand-off queue (proxy.handoff) into the ledger.

`manage.py ledger_writer` runs one per host beside the web workers (`make
run`, `make serve`). Each pass claims the queue files no other writer holds,
reads the complete lines past each file's checkpoint and writes them in
batches through `analytics.services.usage_record_batch` (idempotent by
request_id) behind `proxy.ledger.IsolatingWriter` (bisect, dead letters).

- Checkpoint: `<file>.offset` holds the byte offset up to which the file is
  in the ledger, written (one pwrite) only after the batch's transaction
  committed. A writer killed between commit and checkpoint re-reads that
  batch on restart and the ledger skips what it already holds: each record
  lands exactly once.
- Claim: a writer holds an exclusive flock on a file's `.offset` for as long
  as it works on it, so several writers on one host never take the same
  file (they share the files between them); the lock dies with the process.
- Finished: a queue file its web worker no longer holds (its shared flock
  is gone: rotated past, stopped or killed) is deleted with its checkpoint
  once every line is written.
- Database away (refused, dropped, black-holed past the write timeout): the
  pass stops, nothing advances, the queue grows on disk; the loop retries.
- Durability: files with lines not yet written are fdatasync'd once a second,
  so a power cut costs at most about a second of calls.

Spool files left under AISPENDTRACK_SPOOL_DIR by versions that buffered in
the web worker are replayed too (proxy.spool).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from analytics.records import UsageRecord
from config import fastjson
from config.dbguard import db_deadline
from proxy.handoff import CREATING, SUFFIX
from proxy.ledger import DeadLetters, IsolatingWriter, is_outage, ledger_write
from proxy.spool import Spool

logger = logging.getLogger("aispendtrack.proxy")

OFFSET = ".offset"
# Held shared by every running writer: /healthz tells whether one runs here.
PRESENCE = "writer.lock"
SYNC_SECONDS = 1.0
# A file left half-created (its worker died between creating and renaming it)
# is removed once this old; a live worker renames its file within microseconds.
STALE_CREATING_SECONDS = 60.0
LEGACY_SCAN_SECONDS = 10.0
MIN_READ = 256 * 1024
# /healthz counts backlog lines exactly up to this many bytes, then extrapolates.
COUNT_BYTES = 64 * 1024 * 1024
COUNT_CHUNK = 1024 * 1024  # /healthz reads the queue this much at a time


def close_db_connections() -> None:
    """Drop this thread's connections; the next write opens a fresh one."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        # A broken connection may fail to close; it is gone either way.
        with contextlib.suppress(Exception):
            connection.close()


@dataclass
class Claimed:
    """A queue file this writer works on."""

    path: Path
    fd: int  # read-only descriptor of the queue file
    mark: int  # descriptor of `<file>.offset`, locked exclusively: the claim
    offset: int
    sealed: bool = False  # no web worker appends to it any more
    synced: float = 0.0


def _offset_path(path: Path) -> Path:
    return path.with_name(path.name + OFFSET)


def _read_offset(fd: int) -> int:
    raw = os.pread(fd, 32, 0).strip()
    return int(raw) if raw.isdigit() else 0


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _forget_stale_creating(path: Path) -> None:
    """Remove a file its worker died creating (empty: nothing is written before the rename)."""
    try:
        if time.time() - path.stat().st_mtime > STALE_CREATING_SECONDS:
            path.unlink()
    except FileNotFoundError:
        pass


def complete_lines(fd: int, offset: int, limit: int) -> tuple[list[bytes], int]:
    """Up to `limit` whole lines from `offset`, and the offset after the last
    one. A line still being written (no newline yet) is left for later."""
    size = max(MIN_READ, limit * 1024)
    while True:
        data = os.pread(fd, size, offset)
        cut = data.rfind(b"\n")
        if cut >= 0 or len(data) < size:
            break
        size *= 2  # one line longer than the read: read more
    if cut < 0:
        return [], offset
    lines = data[:cut].split(b"\n")[:limit]
    return lines, offset + sum(len(line) + 1 for line in lines)


class LedgerWriter:
    def __init__(
        self,
        *,
        queue_dir: Path,
        spool_dir: Path,
        batch: int = 2000,
        write: Callable[[Sequence[UsageRecord]], int] = ledger_write,
        write_timeout: float = 5.0,
    ) -> None:
        self.directory = Path(queue_dir)
        self.batch = max(1, batch)
        self.write_timeout = write_timeout
        self.dead = DeadLetters(spool_dir)
        self.legacy = Spool(spool_dir)
        self._raw_write = write
        self._write = IsolatingWriter(self.dead, self._bounded_write)
        self._claimed: dict[str, Claimed] = {}
        # drain() from a test thread and the loop never run a pass at once.
        self._lock = threading.Lock()
        self._presence: int | None = None
        self._last_legacy = float("-inf")
        self._db_down = False
        self.written = self.replayed = self.outages = 0

    # --- one pass -----------------------------------------------------------------

    def step(self) -> int:
        """Write the whole lines the queue files held when the pass began, a
        batch of each file in turn; returns lines consumed.

        Raises the database's error on an outage: batches already committed
        keep their checkpoints, the rest waits in the files.
        """
        with self._lock:
            self._announce()
            self._claim_new()
            consumed = 0
            try:
                consumed = self._advance_all(list(self._claimed.values()))
                self._replay_legacy()
            except Exception as error:
                if is_outage(error):
                    self._went_down(error)
                raise
            self._came_back()
            return consumed

    def drain(self, *, timeout: float | None = None) -> int:
        """Pass until a pass finds nothing left (or `timeout` s); returns events
        written. Tests drain the queue with it; the loop drains on SIGTERM."""
        before = self.written
        deadline = None if timeout is None else time.monotonic() + timeout
        self._last_legacy = float("-inf")  # look at the old spool now, too
        while self.step() and (deadline is None or time.monotonic() < deadline):
            pass
        return self.written - before

    def run(self, stop: threading.Event, *, interval: float) -> None:
        """Pass every `interval` s until `stop` is set; then drain what is left
        (bounded: a database still away leaves it for the next start)."""
        while not stop.is_set():
            try:
                consumed = self.step()
            except Exception as error:
                if not is_outage(error):
                    logger.exception("ledger writer pass failed; retrying")
                stop.wait(max(interval, 1.0))
                continue
            # A pass is bounded by what the files held when it began: one that
            # found a full batch or more is behind, and the next starts at once.
            stop.wait(interval if consumed < self.batch else 0)
        try:
            self.drain(timeout=2.0)
        except Exception as error:
            logger.warning("ledger writer stopped with records left in the queue (%s)", error)

    def close(self) -> None:
        """Give up every claim (another writer may take the files) and the connection."""
        with self._lock:
            for claimed in self._claimed.values():
                os.close(claimed.fd)
                os.close(claimed.mark)
            self._claimed.clear()
            if self._presence is not None:
                os.close(self._presence)
                self._presence = None
        close_db_connections()

    # --- the files ----------------------------------------------------------------

    def _announce(self) -> None:
        if self._presence is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._presence = os.open(self.directory / PRESENCE, os.O_RDONLY | os.O_CREAT, 0o600)
            fcntl.flock(self._presence, fcntl.LOCK_SH)

    def _claim_new(self) -> None:
        names = {entry.name for entry in os.scandir(self.directory)}
        for name in sorted(names):
            if name.endswith(SUFFIX) and name not in self._claimed:
                claimed = self._claim(self.directory / name)
                if claimed is not None:
                    self._claimed[name] = claimed
            elif name.endswith(SUFFIX + OFFSET) and name[: -len(OFFSET)] not in names:
                self._forget_orphan(self.directory / name)
            elif name.endswith(SUFFIX + CREATING):
                _forget_stale_creating(self.directory / name)

    def _claim(self, path: Path) -> Claimed | None:
        mark_path = _offset_path(path)
        mark = os.open(mark_path, os.O_RDWR | os.O_CREAT, 0o600)
        # Ours only if locked and still the checkpoint at that name (a writer
        # finishing the file may have removed it meanwhile).
        if not _try_lock(mark) or not _same_file(mark_path, mark):
            os.close(mark)
            return None
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # finished by another writer since the listing
            mark_path.unlink(missing_ok=True)
            os.close(mark)
            return None
        return Claimed(path, fd, mark, _read_offset(mark))

    def _forget_orphan(self, mark_path: Path) -> None:
        """A checkpoint whose file is gone (a writer died while finishing it)."""
        try:
            mark = os.open(mark_path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            if _try_lock(mark) and _same_file(mark_path, mark):
                mark_path.unlink(missing_ok=True)
        finally:
            os.close(mark)

    def _advance_all(self, files: list[Claimed]) -> int:
        """One batch of each file in turn, up to what each held when the pass
        began. Draining one file before the next starved the others: under
        steady load a file always has new lines by the time its batch is
        written, and the other worker's records waited 10-18 s in the soak."""
        # Sealed is decided before reading: lines read after it are all there will be.
        for claimed in files:
            claimed.sealed = claimed.sealed or _try_lock(claimed.fd)
        ends = {claimed.path: os.fstat(claimed.fd).st_size for claimed in files}
        consumed = 0
        turn = files
        while turn:
            still = []
            for claimed in turn:
                lines = self._advance_batch(claimed, ends[claimed.path])
                if lines:
                    consumed += lines
                    still.append(claimed)
            turn = still
        for claimed in files:
            if claimed.sealed:
                self._finish(claimed)
            else:
                self._sync(claimed)
        return consumed

    def _advance_batch(self, claimed: Claimed, end_of_pass: int) -> int:
        """Write the file's next batch (from lines before `end_of_pass`); lines consumed."""
        if claimed.offset >= end_of_pass:
            return 0
        lines, end = complete_lines(claimed.fd, claimed.offset, self.batch)
        if not lines:
            return 0
        records = self._parse(lines, claimed)
        if records:
            self.written += self._write(records)
        os.pwrite(claimed.mark, b"%020d\n" % end, 0)  # after the commit, never before
        claimed.offset = end
        return len(lines)

    def _parse(self, lines: list[bytes], claimed: Claimed) -> list[UsageRecord]:
        records = []
        for line in lines:
            try:
                records.append(UsageRecord.from_json(fastjson.loads(line)))
            except (ValueError, TypeError, KeyError):
                logger.error(
                    "queue file %s: unreadable line near byte %d skipped",
                    claimed.path.name,
                    claimed.offset,
                )
        return records

    def _sync(self, claimed: Claimed) -> None:
        """Make lines not yet in the ledger survive a power cut (≤ 1 s old)."""
        now = time.monotonic()
        if now - claimed.synced >= SYNC_SECONDS:
            claimed.synced = now
            if os.fstat(claimed.fd).st_size > claimed.offset:
                os.fdatasync(claimed.fd)

    def _finish(self, claimed: Claimed) -> None:
        size = os.fstat(claimed.fd).st_size
        if size > claimed.offset:
            # Its worker was killed mid-write: that call was never answered.
            logger.error(
                "queue file %s ends in %d bytes of a cut line; skipped",
                claimed.path.name,
                size - claimed.offset,
            )
        claimed.path.unlink(missing_ok=True)
        _offset_path(claimed.path).unlink(missing_ok=True)
        os.close(claimed.fd)
        os.close(claimed.mark)
        del self._claimed[claimed.path.name]

    # --- the database ---------------------------------------------------------------

    def _bounded_write(self, records: Sequence[UsageRecord]) -> int:
        with db_deadline(self.write_timeout):
            return self._raw_write(records)

    def _replay_legacy(self) -> None:
        now = time.monotonic()
        if now - self._last_legacy < LEGACY_SCAN_SECONDS:
            return
        self._last_legacy = now
        replayed = self.legacy.replay(self._write)
        self.replayed += replayed
        self.written += replayed

    def _went_down(self, error: BaseException) -> None:
        if not self._db_down:
            self.outages += 1
            logger.error(
                "ledger database unreachable (%s); usage waits in %s until it is back",
                error,
                self.directory,
            )
        self._db_down = True
        close_db_connections()

    def _came_back(self) -> None:
        if self._db_down:
            logger.warning("ledger database reachable again; writing the queue")
            self._db_down = False


# --- what /healthz shows -------------------------------------------------------------


def writer_running(queue_dir: Path) -> bool:
    """Whether a ledger writer runs on this host (it holds PRESENCE shared)."""
    try:
        fd = os.open(Path(queue_dir) / PRESENCE, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        return not _try_lock(fd)
    finally:
        os.close(fd)


def queue_backlog(queue_dir: Path) -> dict:
    """Records and bytes handed off but not yet in the ledger, and the age of
    the oldest. Lines are counted exactly up to COUNT_BYTES, extrapolated past."""
    records = waiting = scanned = counted = 0
    oldest: datetime | None = None
    try:
        paths = [p for p in Path(queue_dir).iterdir() if p.name.endswith(SUFFIX)]
    except FileNotFoundError:
        paths = []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                offset = _offset_of(path)
                size = os.fstat(handle.fileno()).st_size
                if size <= offset:
                    continue
                waiting += size - offset
                handle.seek(offset)
                first = handle.readline()
                oldest = _older(oldest, first)
                budget = COUNT_BYTES - scanned
                chunk = first
                while budget > 0 and chunk:
                    # In pieces of COUNT_CHUNK: one read of the whole budget put
                    # tens of MB in the web worker each second while the queue
                    # was long, and its RSS stepped up at every queue peak.
                    scanned += len(chunk)
                    counted += chunk.count(b"\n")
                    budget -= len(chunk)
                    chunk = handle.read(min(budget, COUNT_CHUNK)) if budget > 0 else b""
        except FileNotFoundError:  # finished meanwhile
            continue
    records = counted if scanned >= waiting or not scanned else round(counted * waiting / scanned)
    age = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
    return {"records": records, "bytes": waiting, "oldest_seconds": round(max(0.0, age), 1)}


def _offset_of(path: Path) -> int:
    try:
        fd = os.open(_offset_path(path), os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        return _read_offset(fd)
    finally:
        os.close(fd)


def _older(oldest: datetime | None, line: bytes) -> datetime | None:
    try:
        created = datetime.fromisoformat(json.loads(line)["created_at"])
    except (ValueError, TypeError, KeyError):
        return oldest
    return created if oldest is None or created < oldest else oldest
