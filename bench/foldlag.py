"""Fold lag, watched from outside: how long a delta waits in the delta log.

Every `every` seconds a marker notes the newest pending delta id; it is
folded once no pending delta has an id at or below it, and its lag is the
time from noting to that. Granularity is the sampling period (a delta may
have been committed up to `every` s before it was noted). Used by
bench.proxy_ingest (the fold beside a sustained ingest) and bench.soak (the
fold beside the whole served stack).
"""

from __future__ import annotations

import time
from collections.abc import Callable

# (oldest pending delta id, newest pending delta id); (None, None) when none wait.
Pending = Callable[[], tuple[int | None, int | None]]


class FoldLagWatch:
    def __init__(self, pending: Pending) -> None:
        self.pending = pending
        self.markers: list[tuple[float, int]] = []
        self.noted = 0
        self.lags: list[tuple[float, float]] = []  # (when folded, lag s)

    def sample(self) -> bool:
        """Settle folded markers and note the newest delta; True when none wait."""
        oldest, newest = self.pending()
        now = time.perf_counter()
        while self.markers and (oldest is None or oldest > self.markers[0][1]):
            self.lags.append((now, now - self.markers.pop(0)[0]))
        if newest is not None and newest > self.noted:
            self.markers.append((now, newest))
            self.noted = newest
        return oldest is None and not self.markers

    def give_up(self) -> None:
        """Markers never folded count as lagging at least until now."""
        now = time.perf_counter()
        self.lags.extend((now, now - noted) for noted, _ in self.markers)
        self.markers.clear()

    def worst(self, since: float = float("-inf")) -> float:
        return max((lag for when, lag in self.lags if when >= since), default=0.0)
