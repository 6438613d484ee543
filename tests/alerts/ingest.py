"""Write calls the way production does: the ledger batch, then the fold that
updates the derived rollups (every few seconds in production)."""

from __future__ import annotations

from analytics.fold import rollups_fold_until_done
from analytics.services import usage_record_batch


def ingest(records) -> None:
    usage_record_batch(records)
    rollups_fold_until_done()
