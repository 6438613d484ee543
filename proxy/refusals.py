"""Counts of refused calls per (organization, UTC hour, reason), kept in memory
and flushed to `analytics.RefusalRollup` every few seconds, off the hot path.

`ProxyRuntime.admit` counts every gate's refusal here by `Refusal.reason`
("budget", "plan"): a gate only has to say why it refused. A client hammering
a closed budget costs one dict increment per call, never a ledger row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from analytics.services import refusal_counts_add

logger = logging.getLogger("aispendtrack.proxy")

Key = tuple[int, datetime, str]


class RefusalCounter:
    def __init__(self, *, run_sync: Callable[..., Awaitable[Any]], interval: float = 5.0) -> None:
        # Blocking DB work runs through `run_sync` (the runtime's ledger thread).
        self.run_sync = run_sync
        self.interval = interval
        self._counts: Counter[Key] = Counter()
        self._task: asyncio.Task | None = None
        self._lock: asyncio.Lock | None = None

    def add(self, organization_id: int, reason: str, *, at: datetime | None = None) -> None:
        moment = at or datetime.now(UTC)
        hour = moment.replace(minute=0, second=0, microsecond=0)
        self._counts[(organization_id, hour, reason or "other")] += 1

    def start(self) -> None:
        self._lock = asyncio.Lock()
        self._task = asyncio.create_task(self._run(), name="aispendtrack-refusals")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush_now()

    async def flush_now(self) -> int:
        """Write the counts gathered so far; on failure they wait for the next flush."""
        if not self._counts:
            return 0
        lock = self._lock or asyncio.Lock()
        async with lock:
            counts, self._counts = self._counts, Counter()
            try:
                await self.run_sync(_write, counts)
            except Exception:
                logger.warning("refusal counters not written; retrying later", exc_info=True)
                self._counts.update(counts)
                return 0
            return sum(counts.values())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush_now()


def _write(counts: Counter[Key]) -> None:
    refusal_counts_add(counts=dict(counts))
