"""Once-in-a-while: the one warning a minute an outage gets, not one per call."""

from __future__ import annotations

import math
import threading
import time

WARN_EVERY_SECONDS = 60.0


class Every:
    """`due()` is True at most once per `seconds` (monotonic clock), across threads."""

    def __init__(self, seconds: float = WARN_EVERY_SECONDS) -> None:
        self.seconds = seconds
        self._last = -math.inf
        self._lock = threading.Lock()

    def due(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.seconds:
                return False
            self._last = now
            return True
