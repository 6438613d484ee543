"""The ASGI application config/asgi.py serves: provider paths to the proxy's
lean endpoint, everything else to Django.

Provider traffic never enters Django's request machinery (~1.8 ms a request,
DESIGN.md "What the hot path costs"). This module also speaks the ASGI
lifespan protocol, which Django does not: startup opens the one upstream
client session and the gates of this worker; shutdown closes them and the
hand-off queue file.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

from proxy import errors
from proxy.endpoint import handle
from proxy.headers import KEY_HEADER
from proxy.relay import answer_error
from proxy.routing import UnknownProvider
from proxy.runtime import ProxyRuntime

logger = logging.getLogger("aispendtrack.proxy")


class ProxyApplication:
    """Dispatcher + lifespan. `runtime` is this worker's shared state."""

    def __init__(self, django_application) -> None:
        self.django_application = django_application
        self.runtime: ProxyRuntime | None = None
        self._starting: asyncio.Lock | None = None

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            runtime = self.runtime or await self._start_lazily()
            live = runtime.live
            if live is not None and live.wants(scope) and await live.serve(scope, send):
                return None
            raw_path = scope.get("raw_path") or scope["path"].encode()
            route = runtime.router.resolve(raw_path.decode("latin-1"))
            if route is None:
                return await self.django_application(scope, receive, send)
            if isinstance(route, UnknownProvider):
                if not any(name == KEY_HEADER for name, _ in scope["headers"]):
                    return await self.django_application(scope, receive, send)
                message = errors.UNKNOWN_PROVIDER.format(slug=route.slug)
                return await answer_error(send, "openai", 404, message, "unknown_provider")
            return await handle(runtime, route, scope, receive, send)
        if kind == "lifespan":
            return await self._lifespan(receive, send)
        return await self.django_application(scope, receive, send)

    async def startup(self) -> ProxyRuntime:
        runtime = ProxyRuntime()
        await runtime.start()
        self.runtime = runtime
        _freeze_startup_objects()
        return runtime

    async def shutdown(self) -> None:
        runtime, self.runtime = self.runtime, None
        if runtime is not None:
            await runtime.stop()

    async def _start_lazily(self) -> ProxyRuntime:
        """For servers that send no lifespan events: start on the first request."""
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            return self.runtime or await self.startup()

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as error:
                    logger.exception("proxy startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception as error:
                    logger.exception("proxy shutdown failed")
                    await send({"type": "lifespan.shutdown.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_application(django_application) -> ProxyApplication:
    return ProxyApplication(django_application)


_frozen = False


def _freeze_startup_objects() -> None:
    """Move everything alive after startup (Django, the apps, the price
    snapshot: ~130k objects) out of the collector's sight, once per process.

    A full (generation 2) collection walks every tracked object with the event
    loop stopped: 20–260 ms each, several a minute under load, which was the
    proxy's p99. Frozen objects are never walked again (`gc.freeze`), so a full
    collection only walks what the calls themselves allocate.
    """
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()
