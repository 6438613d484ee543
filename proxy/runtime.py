"""What one worker process shares across requests: the upstream client, the
router, the hand-off queue. Built at ASGI lifespan startup (or lazily on the
first request when the server sends no lifespan), closed at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
from aiohttp.resolver import DefaultResolver
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connection, connections

from accounts.selectors import api_key_revocations_sync
from analytics.records import UsageRecord
from config.dbguard import db_deadline
from pricing.engine import ensure_fresh
from proxy.budgets import BudgetGate
from proxy.costing import prices_refresh
from proxy.gates import Gate, Refusal
from proxy.handoff import HandoffQueue
from proxy.lean_http import LeanClient
from proxy.live import live_endpoint
from proxy.plan_limits import PlanLimitGate
from proxy.providers import provider_upstream
from proxy.refusals import RefusalCounter
from proxy.resolver import LiteralGuard, PublicResolver, trusted_hosts
from proxy.routing import Router

logger = logging.getLogger("aispendtrack.proxy")

HOUSEKEEPING_TIMEOUT = 5.0

# aiohttp adds these unless told not to; the proxy forwards only what the client sent.
SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class ProxyRuntime:
    def __init__(self) -> None:
        self.router = Router(
            openai=settings.AISPENDTRACK_UPSTREAM_OPENAI,
            anthropic=settings.AISPENDTRACK_UPSTREAM_ANTHROPIC,
            gemini=settings.AISPENDTRACK_UPSTREAM_GEMINI,
            providers=provider_upstream,
        )
        self.connect_timeout = float(settings.AISPENDTRACK_CONNECT_TIMEOUT)
        self.read_timeout = float(settings.AISPENDTRACK_READ_TIMEOUT)
        # Records go to the ledger writer process through this file (proxy.handoff).
        self.queue = HandoffQueue(
            settings.AISPENDTRACK_QUEUE_DIR,
            file_bytes=int(settings.AISPENDTRACK_QUEUE_FILE_MB * 1024 * 1024),
        )
        # The budget gate's and refusal counter's database work (never the ledger):
        # one thread, so it never competes with itself.
        self._db_thread = ThreadPoolExecutor(1, thread_name_prefix="aispendtrack-db")
        # Admission gates (budgets, plan limits), asked before each call is forwarded.
        self.gates: list[Gate] = []
        if settings.AISPENDTRACK_BILLING:  # plans limit calls only on a hosted service
            self.gates.append(PlanLimitGate(redis_url=settings.REDIS_URL))
        self.gates.append(  # hard-cap budgets (alerts.Budget with action=block)
            BudgetGate(
                run_sync=self.run_sync,
                redis_url=settings.REDIS_URL,
                sync_seconds=float(settings.AISPENDTRACK_BUDGET_SYNC_SECONDS),
                reload_seconds=float(settings.AISPENDTRACK_BUDGET_RELOAD_SECONDS),
                reconcile_seconds=float(settings.AISPENDTRACK_BUDGET_RECONCILE_SECONDS),
            )
        )
        # Refused calls per (organization, hour, Refusal.reason): counters, not events.
        self.refusals = RefusalCounter(run_sync=self.run_sync)
        self.session: aiohttp.ClientSession | None = None
        self.lean: LeanClient | None = None
        self.literal_guard: LiteralGuard | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._refresher: asyncio.Task | None = None
        self._housekeeping = ThreadPoolExecutor(1, thread_name_prefix="aispendtrack-housekeeping")
        # The live pages' poll, answered beside Django's stack (proxy/live.py).
        self.live = live_endpoint()

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        resolver = None
        if not settings.AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS:
            trusted = trusted_hosts(
                settings.AISPENDTRACK_UPSTREAM_OPENAI,
                settings.AISPENDTRACK_UPSTREAM_ANTHROPIC,
                settings.AISPENDTRACK_UPSTREAM_GEMINI,
            )
            resolver = PublicResolver(trusted=trusted)
            self.literal_guard = LiteralGuard(trusted)
        self.session = aiohttp.ClientSession(
            # No pool cap: long streams each hold a connection and must not queue others.
            # The resolver refuses internal addresses of staff-registered providers.
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, resolver=resolver),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.connect_timeout, sock_read=self.read_timeout
            ),
            # Relay compressed bodies byte for byte; the side copy is decoded by us.
            auto_decompress=False,
            skip_auto_headers=SKIP_AUTO_HEADERS,
            # One session serves every tenant: upstream cookies must never be replayed.
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        # Plain calls: the same resolver, timeouts and pooling, fewer µs (proxy/lean_http/).
        self.lean = LeanClient(
            resolver=resolver or DefaultResolver(),
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
        )
        self.refusals.start()
        for gate in self.gates:
            await gate.start()
        await prices_refresh()
        self._refresher = asyncio.create_task(self._refresh(), name="aispendtrack-prices")

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for gate in self.gates:
            await gate.stop()
        await self.refusals.stop()
        self.queue.close()
        if self.live is not None:
            await self.live.stop()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self.run_sync(connections.close_all)
        self._db_thread.shutdown(wait=False)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await asyncio.get_running_loop().run_in_executor(
                    self._housekeeping, connections.close_all
                )
        self._housekeeping.shutdown(wait=False)
        # The async ORM's thread (cold key lookups) holds a connection too.
        await sync_to_async(connections.close_all)()
        if self.lean is not None:
            await self.lean.close()
        if self.session is not None:
            await self.session.close()

    def record(self, record: UsageRecord) -> None:
        """Hand the call's record off (one write(2)); called before its last bytes are sent."""
        self.queue.append(record)
        for gate in self.gates:
            gate.observe(record)

    async def run_sync(self, function: Callable[..., Any], *args: Any) -> Any:
        """Blocking database work of the gates, on the runtime's database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._db_thread, function, *args)

    def admit(self, call) -> Refusal | Awaitable[Refusal | None] | None:
        """The first gate's refusal, or None: the call may be forwarded; or an
        awaitable of either when a gate must ask Redis first (the plan gate
        with no allowance left: proxy/plan_limits.py). A refusal is counted
        here by its reason (dashboard's refusals per hour), and the gates that
        had admitted the call withdraw it."""
        for gate in self.gates:
            verdict = gate.admit(call)
            if verdict is not None:
                if isinstance(verdict, Refusal):
                    return self._refused(call, gate, verdict)
                return self._admit_after(call, gate, verdict)
        return None

    async def _admit_after(self, call, gate: Gate, pending: Awaitable[Refusal | None]):
        refusal = await pending
        if refusal is not None:
            return self._refused(call, gate, refusal)
        for later in self.gates[self.gates.index(gate) + 1 :]:
            verdict = later.admit(call)
            if verdict is not None:
                if not isinstance(verdict, Refusal):
                    verdict = await verdict
                if verdict is not None:
                    return self._refused(call, later, verdict)
        return None

    def _refused(self, call, gate: Gate, refusal: Refusal) -> Refusal:
        for earlier in self.gates[: self.gates.index(gate)]:
            earlier.withdraw(call)
        self.refusals.add(call.identity.organization_id, refusal.reason)
        return refusal

    async def _refresh(self) -> None:
        """Prices, the provider map and key revocations, each second (a no-op
        when nothing changed), on a thread of their own with bounded database
        waits: a hung database never stalls them for good."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            try:
                await loop.run_in_executor(self._housekeeping, _housekeeping_round)
            except Exception as error:  # the database is away: the next second retries
                logger.debug("housekeeping round failed: %s", error)


def _housekeeping_round() -> None:
    """Reload prices if they changed; forget keys revoked in any process
    (≤ 1 s after a revoke, with or without Redis)."""
    try:
        with db_deadline(HOUSEKEEPING_TIMEOUT):
            ensure_fresh()
        api_key_revocations_sync()
    except DatabaseError:
        with contextlib.suppress(Exception):
            connection.close()  # possibly severed: the next round opens a fresh one
        raise
