"""UsageRecord: what the proxy hands the ledger for one call.

A plain dataclass (no ORM) so the proxy can build it on the event loop for
microseconds, buffer it, spool it to disk as JSON and replay it later.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pricing.usage import Usage


@dataclass(slots=True)
class UsageRecord:
    request_id: str
    organization_id: int
    api_key_id: int | None
    created_at: datetime  # aware, UTC: when the call started
    provider: str
    endpoint: str
    status: str  # analytics.models.Status value
    model: str = ""
    response_model: str = ""
    customer_id: str = ""
    feature: str = ""
    trace_id: str = ""
    environment: str = ""
    properties: dict[str, str] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    cost: Decimal | None = None  # None: no price matched (priced=false)
    http_status: int | None = None
    latency_ms: int = 0
    ttfb_ms: int | None = None
    streamed: bool = False
    upstream_request_id: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (for the disk spool); `from_json` inverts it exactly."""
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["cost"] = None if self.cost is None else str(self.cost)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UsageRecord:
        data = dict(data)
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        data["cost"] = None if data.get("cost") is None else Decimal(data["cost"])
        data["usage"] = Usage(**data.get("usage") or {})
        return cls(**data)
