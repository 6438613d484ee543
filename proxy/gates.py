"""Admission gates: what may refuse a call before it is forwarded.

A gate is an in-memory check (no I/O on the hot path) that the endpoint asks
once per call, after the key and tags are known and before anything is sent
upstream, and tells about every recorded call afterwards so it can keep its
counters. Budgets (`alerts`) and plan limits (`billing`) each register one in
`ProxyRuntime.gates`; the endpoint knows nothing of either.

A refusal is answered as a 429 in the caller's provider shape (see
`relay.answer_refusal`) and counted per organization and hour as a refusal,
never as a ledger event, so a client hammering a closed budget cannot flood
the ledger.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from analytics.records import UsageRecord
    from proxy.calls import Call


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str  # e.g. "budget_exceeded", "plan_limit_exceeded"
    message: str  # for people: which limit, when it resets, what to do
    retry_after: int  # whole seconds until a call may pass again
    # False adds `x-should-retry: false`: the official SDKs then do not retry.
    should_retry: bool = True
    status: int = 429
    # Extra response headers, e.g. x-aispendtrack-limit / -remaining / -reset.
    headers: tuple[tuple[str, str], ...] = field(default=())
    # What the refusal is counted as (budget / plan): the dashboard's per-hour counters.
    reason: str = ""


class Gate(Protocol):
    async def start(self) -> None:
        """Load state and start any background sync (called at runtime start)."""

    async def stop(self) -> None: ...

    def admit(self, call: Call) -> Refusal | Awaitable[Refusal | None] | None:
        """None to let the call through; in memory only, no I/O. The plan gate
        alone may answer an awaitable instead, when it must ask Redis first
        (it holds no allowance left for the call's organization)."""

    def withdraw(self, call: Call) -> None:
        """A later gate refused a call this gate admitted: undo what `admit` reserved."""

    def observe(self, record: UsageRecord) -> None:
        """A call was recorded (any status): update counters. In memory only."""
