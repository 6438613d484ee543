"""Helpers for the analytics tests: write calls through the real ledger path."""

from __future__ import annotations

import itertools
from datetime import datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction

from analytics.fold import rollups_fold_until_done
from analytics.models import Status
from analytics.records import UsageRecord
from analytics.services import usage_record_batch
from pricing.usage import Usage

_ids = itertools.count(1)


def call(
    org,
    at: datetime,
    *,
    cost: str | None = "0.0100000000",
    model: str = "gpt-4o",
    provider: str = "openai",
    customer_id: str = "",
    feature: str = "",
    environment: str = "production",
    status: str = Status.SUCCESS,
    trace_id: str = "",
    input_tokens: int = 100,
    output_tokens: int = 10,
    api_key_id: int | None = None,
    latency_ms: int = 250,
    streamed: bool = False,
    **extra,
) -> UsageRecord:
    """One call as the proxy would hand it to the ledger."""
    return UsageRecord(
        request_id=f"req_t{next(_ids):08d}",
        organization_id=org.pk,
        api_key_id=api_key_id,
        created_at=at,
        provider=provider,
        endpoint="/v1/chat/completions",
        status=status,
        model=model,
        response_model=model,
        customer_id=customer_id,
        feature=feature,
        trace_id=trace_id,
        environment=environment,
        usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        cost=None if cost is None else Decimal(cost),
        http_status=200 if status == Status.SUCCESS else 500,
        latency_ms=latency_ms,
        streamed=streamed,
        **extra,
    )


@pytest.fixture
def ingest(db):
    """Write records as the ledger writer does, then run the fold (what the
    fold loop does within seconds), so dashboards read them at once."""

    def write(*records: UsageRecord) -> list[UsageRecord]:
        usage_record_batch(list(records))
        rollups_fold_until_done()
        return list(records)

    return write


def plan_without(qs, *plans: str) -> str:
    """`qs.explain()` with PostgreSQL's planner kept off each of `plans`
    (`seqscan`, `sort`, `bitmapscan`: SET LOCAL enable_… = off): a test's
    handful of rows leaves the planner free to pick any plan, where the
    question is whether an index can answer. On SQLite, the plain plan."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for name in plans:
                    cursor.execute(f"SET LOCAL enable_{name} = off")
        return qs.explain()
