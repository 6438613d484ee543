"""The hand-off from web worker to ledger writer: local file queue vs Redis stream.

`python -m bench handoff` (REDIS_URL, else redis://127.0.0.1:6379/5). What
one call costs the web worker's event loop to hand its record off durably
enough to answer (the record must be out of the process before the answer
goes out): proxy.handoff's one write(2) per record, against XADD to a Redis
stream, blocking (redis-py) and awaited (redis.asyncio: the call waits for
the acknowledgement, other calls run meanwhile). Same records, same run,
ROUNDS rounds of RECORDS each; medians of the per-round means.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bench import Result

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
RECORDS = int(os.environ.get("BENCH_HANDOFF_RECORDS", "20000"))
STREAM = "aispendtrack:bench:handoff"


def _record(n: int):
    from analytics.records import UsageRecord
    from pricing.usage import Usage

    return UsageRecord(
        request_id=f"req_{n:024x}",
        organization_id=1,
        api_key_id=2,
        created_at=datetime.now(UTC),
        provider="openai",
        endpoint="/v1/chat/completions",
        status="success",
        model="gpt-4o",
        response_model="gpt-4o-2024-08-06",
        customer_id=f"customer-{n % 50}",
        feature="search",
        usage=Usage(input_tokens=1200, output_tokens=300, cached_input_tokens=512),
        cost=Decimal("0.0045670000"),
        latency_ms=420,
        ttfb_ms=180,
        upstream_request_id=f"chatcmpl-{n}",
    )


def _file_round(records) -> float:
    from proxy.handoff import HandoffQueue

    with tempfile.TemporaryDirectory() as directory:
        queue = HandoffQueue(Path(directory))
        started = time.perf_counter()
        for record in records:
            queue.append(record)
        elapsed = time.perf_counter() - started
        queue.close()
    return elapsed / len(records) * 1e6


def _redis_round(client, records) -> float:
    from proxy.handoff import record_line

    client.delete(STREAM)
    started = time.perf_counter()
    for record in records:
        client.xadd(STREAM, {"r": record_line(record)})
    elapsed = time.perf_counter() - started
    client.delete(STREAM)
    return elapsed / len(records) * 1e6


async def _redis_async_round(url: str, records) -> float:
    import redis.asyncio

    from proxy.handoff import record_line

    client = redis.asyncio.Redis.from_url(url)
    await client.delete(STREAM)
    started = time.perf_counter()
    for record in records:
        await client.xadd(STREAM, {"r": record_line(record)})
    elapsed = time.perf_counter() - started
    await client.delete(STREAM)
    await client.aclose()
    return elapsed / len(records) * 1e6


def measure() -> dict[str, list[float]]:
    import redis

    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/5"
    client = redis.Redis.from_url(url)
    records = [_record(n) for n in range(RECORDS)]
    figures: dict[str, list[float]] = {"file": [], "xadd": [], "xadd_async": []}
    for _ in range(ROUNDS):
        figures["file"].append(_file_round(records))
        figures["xadd"].append(_redis_round(client, records))
        figures["xadd_async"].append(asyncio.run(_redis_async_round(url, records)))
    figures["aof"] = [1.0 if client.config_get("appendonly")["appendonly"] == "yes" else 0.0]
    return figures


def run() -> list[Result]:
    figures = measure()
    file_us = statistics.median(figures["file"])
    note = f"rounds: {', '.join(f'{v:.1f}' for v in figures['file'])} µs"
    results = [Result("handoff: file queue append (one write(2))", file_us, note=note)]
    for name, label in (("xadd", "blocking"), ("xadd_async", "awaited")):
        value = statistics.median(figures[name])
        rounds = ", ".join(f"{v:.1f}" for v in figures[name])
        results.append(
            Result(
                f"handoff: Redis XADD, {label} (baseline: file queue)",
                value,
                baseline_us=file_us,
                note=f"rounds: {rounds} µs; appendonly {'yes' if figures['aof'][0] else 'no'}",
            )
        )
    return results
