"""The Redis cache as an accelerator, never a dependency.

With Redis down (or not answering within its socket timeout) every cache
call answers as a miss: reads return the default, writes do nothing. Callers
then fall back to the database (API keys, sessions are in the database
anyway) and the request is served. After a failure the backend skips Redis
for RETRY_SECONDS instead of paying a connect attempt per call, logs one
WARNING a minute at most (no traceback per call), and resumes by itself once
Redis answers again: no restart.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger("aispendtrack.cache")

RETRY_SECONDS = 1.0
WARN_EVERY_SECONDS = 60.0


class ResilientRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._down_until = 0.0
        self._warned_at = -WARN_EVERY_SECONDS
        self._lock = threading.Lock()

    @property
    def is_down(self) -> bool:
        return time.monotonic() < self._down_until

    def ping(self) -> bool:
        """True when Redis answers now (for /healthz); also closes the breaker."""
        try:
            self._cache.get_client(write=True).ping()  # type: ignore[attr-defined]
        except (RedisError, OSError) as error:
            self._failed(error)
            return False
        self._down_until = 0.0
        return True

    def _failed(self, error: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            self._down_until = now + RETRY_SECONDS
            warn = now - self._warned_at >= WARN_EVERY_SECONDS
            if warn:
                self._warned_at = now
        if warn:
            logger.warning(
                "Redis cache unreachable (%s: %s); serving without it (API keys from the "
                "database, limits per process) until it answers again",
                type(error).__name__,
                error,
            )

    def _guard(self, default: Any, method, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() < self._down_until:
            return default
        try:
            return method(*args, **kwargs)
        except (RedisError, OSError) as error:
            self._failed(error)
            return default

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard(False, super().add, key, value, timeout, version)

    def get(self, key, default=None, version=None):
        return self._guard(default, super().get, key, default, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard(None, super().set, key, value, timeout, version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard(False, super().touch, key, timeout, version)

    def delete(self, key, version=None):
        return self._guard(False, super().delete, key, version)

    def get_many(self, keys, version=None):
        return self._guard({}, super().get_many, keys, version)

    def has_key(self, key, version=None):
        return self._guard(False, super().has_key, key, version)

    def incr(self, key, delta=1, version=None):
        # A counter that cannot be read counts from here (rate limits degrade open).
        return self._guard(delta, super().incr, key, delta, version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard(list(data), super().set_many, data, timeout, version)

    def delete_many(self, keys, version=None):
        return self._guard(None, super().delete_many, keys, version)

    def clear(self):
        return self._guard(None, super().clear)
