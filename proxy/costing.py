"""The price of one call, from the pricing app's engine (in memory, microseconds).

Failed calls that report no usage cost nothing; a successful call whose
usage or model has no price is recorded unpriced (cost None → priced=false)
and re-priced by the pricing app later.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from pricing.engine import aensure_fresh, cost_for_call
from pricing.usage import Usage

logger = logging.getLogger("aispendtrack.proxy")

ZERO = Decimal(0)


async def prices_refresh() -> None:
    """Reload the engine's price snapshot if prices changed (off the hot path;
    returns at once when not due). The engine prices nothing until loaded."""
    try:
        await aensure_fresh()
    except Exception:
        logger.warning("price refresh failed; keeping the current prices", exc_info=True)


def call_cost(
    *,
    organization_id: int,
    provider: str,
    model: str,
    response_model: str = "",
    usage: Usage | None,
    at: datetime,
    billable: bool,
    succeeded: bool,
) -> Decimal | None:
    """USD cost, Decimal; None when it cannot be priced (yet)."""
    if usage is None or usage.is_empty:
        # Nothing counted: free if the call failed or uses no tokens; else unknown.
        return ZERO if not (billable and succeeded) else None
    if not (model or response_model):
        return None
    try:
        return cost_for_call(
            organization=organization_id,
            provider=provider,
            model=model,
            response_model=response_model,
            usage=usage,
            at=at,
        )
    except Exception:  # a pricing bug must never fail a proxied call
        logger.exception("pricing failed for %s/%s; recorded unpriced", provider, model)
        return None
