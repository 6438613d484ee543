"""Retention purge of N expired raw calls (default 1,000,000; BENCH_PURGE_EVENTS):
total time, rows/s, and each batch transaction's duration, which bounds how
long the ledger writer can wait behind the purge. PostgreSQL only (DATABASE_URL):
events are seeded with one INSERT … SELECT FROM generate_series into a
throwaway organization, removed afterwards.

The purge runs `billing.retention.usage_purge`, the code the beat task and
`manage.py purge_usage` run."""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.test import override_settings

from accounts.models import Organization
from bench import Result
from billing.retention import BATCH_SIZE, usage_purge

COLUMNS = (
    "organization_id, request_id, created_at, provider, endpoint, model, response_model, "
    "customer_id, feature, trace_id, environment, properties, input_tokens, output_tokens, "
    "cached_input_tokens, cache_write_tokens, cache_write_1h_tokens, reasoning_tokens, "
    "input_audio_tokens, output_audio_tokens, cost, priced, status, http_status, latency_ms, "
    "ttfb_ms, streamed, upstream_request_id"
)


def _seed(organization: Organization, n: int, oldest: datetime) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO analytics_usageevent ({COLUMNS}) "  # noqa: S608 (constants)
            "SELECT %s, 'req_bench_purge_' || i, %s + i * interval '1 second', 'openai', "
            "'/v1/chat/completions', 'gpt-4o', 'gpt-4o', 'cust-' || (i %% 500), '', '', "
            "'production', '{}', 100, 10, 0, 0, 0, 0, 0, 0, 0.0001, true, 'success', 200, "
            "250, 100, false, '' FROM generate_series(1, %s) AS i",
            [organization.pk, oldest, n],
        )


def run() -> list[Result]:
    if connection.vendor != "postgresql":
        return [Result("purge: skipped (needs PostgreSQL: set DATABASE_URL)", 0.0)]
    n = int(os.environ.get("BENCH_PURGE_EVENTS", "1000000"))
    organization = Organization.objects.create(
        name="bench purge", slug=f"bench-purge-{os.getpid()}-{int(time.time())}"
    )
    batches: list[float] = []
    try:
        now = datetime.now(UTC)
        started = time.perf_counter()
        _seed(organization, n, now - timedelta(days=400))
        seeded = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE analytics_usageevent")
        with override_settings(AISPENDTRACK_BILLING=False, AISPENDTRACK_RETENTION_DAYS=30):
            started = time.perf_counter()
            result = usage_purge(
                organization=organization, on_batch=lambda count, seconds: batches.append(seconds)
            )
            elapsed = time.perf_counter() - started
    finally:
        organization.delete()
    assert result is not None and result.deleted == n, result
    note = (
        f"{n:,} rows in {elapsed:.1f} s ({n / elapsed:,.0f} rows/s), {len(batches)} batches of "
        f"≤ {BATCH_SIZE:,}; a batch's transaction: median {statistics.median(batches) * 1000:.0f} "
        f"ms, max {max(batches) * 1000:.0f} ms (seeding took {seeded:.1f} s)"
    )
    return [Result("purge: µs per expired raw call deleted", elapsed / n * 1e6, note=note)]
