"""Billing test helpers: the ledger writer fixture and the built-in plans."""

from __future__ import annotations

import pytest

from billing.models import Plan
from billing.plans import PLANS
from tests.analytics.conftest import ingest  # noqa: F401  (re-exported fixture)


@pytest.fixture
def plans(db):
    """The seeded plans; transactional tests flush them, so they ask again."""
    for values in PLANS:
        Plan.objects.get_or_create(slug=values["slug"], defaults=values)
    return {plan.slug: plan for plan in Plan.objects.all()}
