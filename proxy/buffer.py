"""The per-process usage buffer: records in, batched ledger writes out.

The request path only appends to a list (no I/O, no thread hop). A flusher
task hands the list to one dedicated thread every AISPENDTRACK_FLUSH_INTERVAL
seconds, or as soon as AISPENDTRACK_FLUSH_MAX_EVENTS are waiting; the thread
calls `analytics.services.usage_record_batch` (one transaction) through
`proxy.ledger.IsolatingWriter`: a batch the database refuses is bisected, so
one tenant's bad record never costs another's, and a record refused alone
goes to the dead-letter file. If the database is unreachable (or a write
passes AISPENDTRACK_LEDGER_WRITE_TIMEOUT), the batch goes to the disk spool
and is replayed once a write succeeds again. Past AISPENDTRACK_BUFFER_MAX_EVENTS
waiting records (a long outage under load), records go straight to the spool
from a second thread: memory stays bounded and the event loop never waits.
Shutdown flushes what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from analytics.records import UsageRecord
from config.dbguard import db_deadline
from proxy.ledger import DeadLetters, IsolatingWriter, ledger_write
from proxy.spool import Spool

logger = logging.getLogger("aispendtrack.proxy")

# How often the spool directory is checked for other processes' files even
# when this process spooled nothing (a worker that died during an outage).
SPOOL_SCAN_SECONDS = 10.0


def _close_db_connections() -> None:
    """Drop this thread's connections; the next write opens a fresh one."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        # A broken connection may fail to close; it is gone either way.
        with contextlib.suppress(Exception):
            connection.close()


class UsageBuffer:
    def __init__(
        self,
        *,
        spool_dir: Path,
        interval: float,
        max_events: int,
        write: Callable[[Sequence[UsageRecord]], int] = ledger_write,
        max_pending: int = 50_000,
        write_timeout: float = 5.0,
    ) -> None:
        self.interval = interval
        self.max_events = max(1, max_events)
        self.max_pending = max(self.max_events, max_pending)
        self.write_timeout = write_timeout
        self.spool = Spool(spool_dir)
        self.dead = DeadLetters(spool_dir)
        self._raw_write = write
        self._write = IsolatingWriter(self.dead, self._bounded_write)
        self._pending: list[UsageRecord] = []
        self._wake = asyncio.Event()
        # One thread: the ledger's DB connection lives there, writes never overlap.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="aispendtrack-ledger")
        # Overflow goes to the spool from its own thread: the ledger thread may
        # be waiting on a database that does not answer.
        self._overflow = ThreadPoolExecutor(1, thread_name_prefix="aispendtrack-overflow")
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._replay_due = True  # at start: files an earlier run may have left
        self._last_scan = 0.0
        self._db_down = False
        self.written = self.spooled = self.replayed = 0

    # --- the event loop side ----------------------------------------------------

    def add(self, record: UsageRecord) -> None:
        """Queue one record. Microseconds; never blocks, never raises."""
        self._pending.append(record)
        if len(self._pending) >= self.max_events:
            self._wake.set()
            if len(self._pending) >= self.max_pending:
                self._spill()

    def _spill(self) -> None:
        """Hand everything waiting to the overflow thread, which spools it."""
        batch, self._pending = self._pending, []
        logger.warning(
            "usage buffer full (%d records waiting for the ledger); spooling them to %s",
            len(batch),
            self.spool.directory,
        )
        self._overflow.submit(self._spool_overflow, batch, asyncio.get_running_loop())

    def _spool_overflow(self, batch: list[UsageRecord], loop: asyncio.AbstractEventLoop) -> None:
        try:
            self.spool.append(batch)
        except OSError:
            logger.critical("cannot spool %d usage records; kept in memory", len(batch))
            loop.call_soon_threadsafe(self._pending.extend, batch)
            return
        self.spooled += len(batch)
        self._replay_due = True

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="aispendtrack-flusher")

    async def stop(self) -> None:
        """Stop the flusher and store what is left (ledger or spool)."""
        if self._task is not None:
            # A flag, not task.cancel(): a cancel racing a wake-up can be lost
            # in Python 3.11's wait primitives, and a flush in flight must finish.
            self._stopping = True
            self._wake.set()
            await self._task
            self._task = None
        # Bounded even with the database black-holed: each write gives up
        # after write_timeout, and the batch goes to the spool.
        await self.flush_now()
        await self.run_sync(_close_db_connections)
        self._executor.shutdown(wait=False)
        self._overflow.shutdown(wait=True)

    async def flush_now(self, *, replay: bool = True) -> int:
        """Write everything queued now (and replay the spool); returns events written."""
        if replay:
            self._replay_due = True
        batch, self._pending = self._pending, []
        unsaved, written = await self.run_sync(self._store, batch)
        if unsaved:  # not even the spool took them: keep them for the next flush
            self._pending[:0] = unsaved
        return written

    async def run_sync(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run blocking DB work in the ledger thread (also used for the provider map)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.flush_now(replay=False)
            except Exception:
                logger.exception("usage flush failed; retrying at the next tick")

    # --- the ledger thread ------------------------------------------------------

    def _bounded_write(self, records: Sequence[UsageRecord]) -> int:
        with db_deadline(self.write_timeout):
            return self._raw_write(records)

    def _spool_or_keep(self, batch: list[UsageRecord]) -> list[UsageRecord]:
        """Spool the batch; what even the spool refuses is returned, to keep in memory."""
        if not batch:
            return []
        try:
            self.spool.append(batch)
        except OSError:
            logger.critical("cannot spool %d usage records; kept in memory", len(batch))
            return batch
        self.spooled += len(batch)
        self._replay_due = True
        return []

    def _store(self, batch: list[UsageRecord]) -> tuple[list[UsageRecord], int]:
        written = 0
        if batch:
            try:
                written = self._write(batch)
            except Exception as error:
                # IsolatingWriter raises only when the database is unusable.
                self._went_down(error)
                return self._spool_or_keep(batch), 0
            self.written += written
            self._came_back()
        now = time.monotonic()
        if self._replay_due or now - self._last_scan > SPOOL_SCAN_SECONDS:
            self._last_scan = now
            self._replay()
        return [], written

    def _replay(self) -> None:
        try:
            replayed = self.spool.replay(self._write)
        except Exception as error:
            self._went_down(error)
            return
        self._replay_due = False
        self.replayed += replayed
        self.written += replayed
        if replayed:
            self._came_back()

    def _went_down(self, error: Exception) -> None:
        if not self._db_down:
            logger.error(
                "ledger database unreachable (%s); spooling usage to %s until it is back",
                error,
                self.spool.directory,
            )
        self._db_down = True
        _close_db_connections()

    def _came_back(self) -> None:
        if self._db_down:
            logger.warning("ledger database reachable again; replaying the spool")
            self._db_down = False
            self._replay_due = True
