"""bench/RESULTS.md's proxy section, written from a `bench.proxy` run."""

from __future__ import annotations

import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BEGIN, END = "<!-- proxy:begin -->", "<!-- proxy:end -->"


def write_results(data: dict, s: dict, *, seconds: int, rounds: int, workers: int) -> None:
    rows = "\n".join(
        f"| {n} | {r['direct_c1']['p50_us']} | {r['floor_c1']['p50_us']} | "
        f"{r['proxy_c1']['p50_us']} | {r['direct_c32']['rps']:.0f} | "
        f"{r['floor_c32']['rps']:.0f} | {r['proxy_c32']['rps']:.0f} | "
        f"{r['floor_c32']['p99_us']} | {r['proxy_c32']['p99_us']} |"
        for n, r in enumerate(data["rounds"], 1)
    )
    fmt = ", ".join
    section = f"""{BEGIN}
## Proxy (`python -m bench proxy`)

Machine: {machine_line()}; shared with other work while measured. uvicorn {workers}
workers (uvloop, httptools; the proxy with `make serve`'s protocol class,
config.httpguard), DEBUG off, PostgreSQL + Redis, per-call INFO log on, the ledger writer
process beside the web workers. Floor: a raw ASGI callable relaying with aiohttp
(bench/floor.py), served alike on uvicorn's own httptools protocol. Fake upstream: raw
asyncio/httptools canned chat completion. Load: wrk, {seconds} s per run, {rounds} rounds
alternating direct, floor and proxy; medians; ratios are medians of each round's ratio.

| figure | direct | floor | via proxy | target |
|---|---|---|---|---|
| p50 latency at c=1 | {s["direct_p50_c1"]:.0f} µs | {s["floor_p50_c1"]:.0f} µs \
(added {s["floor_added_p50_c1"]:.0f} µs) | {s["proxy_p50_c1"]:.0f} µs \
(added **{s["added_p50_c1"]:.0f} µs**) | added ≤ 1,000 µs |
| throughput at c=32 | {s["direct_rps_c32"]:,.0f} req/s | {s["floor_rps_c32"]:,.0f} req/s \
| **{s["proxy_rps_c32"]:,.0f} req/s ({s["rps_vs_floor"]:.2f} of the floor)** | ≥ 0.5 of the floor |
| p99 latency at c=32 | {s["direct_p99_c32"]:,.0f} µs | {s["floor_p99_c32"]:,.0f} µs \
| **{s["proxy_p99_c32"]:,.0f} µs ({s["p99_vs_floor"]:.1f}× the floor's)** | ≤ 3× the floor's |
| errors (all runs + soak) | | | {s["errors"]} | 0 |
| worker RSS, MB (start → {data["mid_requests"]:,} → {data["proxied_requests"]:,} calls) | \
| | {fmt(f"{v:.0f}" for v in data["rss_start"])} → {fmt(f"{v:.0f}" for v in data["rss_mid"])} \
→ {fmt(f"{v:.0f}" for v in data["rss_end"])} | flat |
| ledger rows for the proxied calls | | | {data["recorded"]:,} of \
{data["proxied_requests"]:,} completed (+ in flight at each run's end) | all |
| ingest (`usage_record_batch`, batches of 500) | | | \
**{data["ingest_per_s"]:,.0f} events/s** | ≥ 10,000 /s |

Per round (µs; req/s):

| round | c=1 p50 direct | c=1 p50 floor | c=1 p50 proxy | c=32 direct | c=32 floor \
| c=32 proxy | c=32 p99 floor | c=32 p99 proxy |
|---|---|---|---|---|---|---|---|---|
{rows}
{END}"""
    section_write(section, begin=BEGIN, end=END)


def section_write(section: str, *, begin: str, end: str) -> None:
    """Replace bench/RESULTS.md's text from `begin` to `end` (both in `section`)
    with `section`, or append it when the markers are not there yet."""
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if begin in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


def machine_line() -> str:
    """The machine, for a section's first line."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores ({_cpu_model()}), "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
