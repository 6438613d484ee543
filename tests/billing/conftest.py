"""Billing test helpers: the ledger writer fixture and the built-in plans."""

from __future__ import annotations

from tests.analytics.conftest import ingest  # noqa: F401  (re-exported fixture)
