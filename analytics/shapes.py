"""UsageShapeRollup: the token sums the cost simulator re-prices (see the model).

Folded from the delta log like the other derived tables (analytics.fold): each
ledger batch's delta rows carry their calls' input band, the audio tokens and
the largest input, so the ingest transaction never writes this table. The sums
add; `max_input_tokens` keeps the larger value (analytics.rollups.MAXIMA); like
every rollup, each event is added exactly once.
"""

from __future__ import annotations

from bisect import bisect_left

from analytics.models import INPUT_BAND_EDGES


def input_band(input_tokens: int) -> int:
    """How many band edges a call's input exceeds (a tier "above N" applies when input > N)."""
    return bisect_left(INPUT_BAND_EDGES, input_tokens)


def band_floor(band: int) -> int:
    """The smallest input in a band: what a tier threshold is compared with."""
    return 0 if band == 0 else INPUT_BAND_EDGES[band - 1] + 1
