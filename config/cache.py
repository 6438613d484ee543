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

from config.throttle import Every

logger = logging.getLogger("aispendtrack.cache")

RETRY_SECONDS = 1.0


class _Breaker:
    """Shared by every thread's instance of one cache (Django builds one per
    thread): one "down" state, one warning a minute per process."""

    def __init__(self) -> None:
        self.down_until = 0.0
        self.warning = Every()


_breakers: dict[str, _Breaker] = {}
_breakers_lock = threading.Lock()


class ResilientRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        with _breakers_lock:
            self._breaker = _breakers.setdefault(str(server), _Breaker())

    @property
    def is_down(self) -> bool:
        return time.monotonic() < self._breaker.down_until

    def ping(self) -> bool:
        """True when Redis answers now (for /healthz); also closes the breaker."""
        try:
            self._cache.get_client(write=True).ping()  # type: ignore[attr-defined]
        except (RedisError, OSError) as error:
            self._failed(error)
            return False
        self._breaker.down_until = 0.0
        return True

    def _failed(self, error: Exception) -> None:
        self._breaker.down_until = time.monotonic() + RETRY_SECONDS
        if self._breaker.warning.due():
            logger.warning(
                "Redis cache unreachable (%s: %s); serving without it (API keys from the "
                "database, limits per process) until it answers again",
                type(error).__name__,
                error,
            )

    def _guard(self, default: Any, method, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() < self._breaker.down_until:
            return default
        try:
            return method(*args, **kwargs)
        except (RedisError, OSError) as error:
            self._failed(error)
            return default

    # Down, the cache behaves as an empty one that forgets at once: `add`
    # succeeds (a lock taken through it, as allauth's rate limit does, is granted).
    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard(True, super().add, key, value, timeout, version)

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
