"""Ledger ingest rate: `usage_record_batch` on realistic batches, in its own process
(the database of DATABASE_URL, the benchmark's PostgreSQL). Prints `INGEST <events/s>`.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

EVENTS = 20_000
BATCH = 500


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from accounts.models import Organization
    from analytics.models import (
        CustomerRollup,
        DailyCoarseRollup,
        HourlyCoarseRollup,
        HourlyRollup,
        UsageEvent,
    )
    from analytics.records import UsageRecord
    from analytics.services import usage_record_batch
    from pricing.usage import Usage

    ROLLUPS = (UsageEvent, HourlyRollup, HourlyCoarseRollup, DailyCoarseRollup, CustomerRollup)
    org, _ = Organization.objects.get_or_create(slug="bench-ingest", defaults={"name": "Ingest"})
    for model in ROLLUPS:
        model.objects.filter(organization=org).delete()
    start = datetime.now(UTC) - timedelta(hours=2)
    stamp = time.time_ns()
    records = [
        UsageRecord(
            request_id=f"req_{stamp:x}{n:08x}"[:40],
            organization_id=org.pk,
            api_key_id=None,
            created_at=start + timedelta(milliseconds=n * 300),
            provider="openai",
            endpoint="/v1/chat/completions",
            status="success",
            model=("gpt-4o", "gpt-4o-mini", "o3")[n % 3],
            customer_id=f"cust-{n % 50}",
            feature=("chat", "search", "summary")[n % 3],
            environment="prod",
            usage=Usage(input_tokens=1000 + n % 97, output_tokens=200 + n % 31),
            cost=Decimal("0.0012345678"),
            latency_ms=400,
        )
        for n in range(EVENTS)
    ]
    began = time.perf_counter()
    for first in range(0, EVENTS, BATCH):
        usage_record_batch(records[first : first + BATCH])
    elapsed = time.perf_counter() - began
    assert UsageEvent.objects.filter(organization=org).count() == EVENTS
    for model in ROLLUPS:
        model.objects.filter(organization=org).delete()
    print(f"INGEST {EVENTS / elapsed:.1f}")


if __name__ == "__main__":
    main()
