"""Micro-benchmarks: `make bench` runs them all, `python -m bench NAME …` some.

A benchmark is a module of this package with `run() -> list[Result]`, listed
in BENCHMARKS. Each result is a median of several runs and, where it makes
sense, is set against a baseline measured in the same run on the same
machine, so the ratio means something on a busy 2-core box. Record figures in
bench/RESULTS.md.
"""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable
from dataclasses import dataclass

# Module names under bench/, run in this order.
BENCHMARKS: tuple[str, ...] = (
    "pricing_engine",
    "simulator",
    "proxy",
    "proxy_ingest",
    "handoff",
    "plan_limits",
    "purge",
    "budgets",
    "soak",  # BENCH_SOAK_SECONDS long (default 10 minutes)
)


@dataclass
class Result:
    name: str
    us_per_call: float  # a timing, not money
    baseline_us: float | None = None
    limit_us: float | None = None  # the budget; over it, `make bench` fails
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline_us else self.us_per_call / self.baseline_us

    @property
    def over_limit(self) -> bool:
        return self.limit_us is not None and self.us_per_call > self.limit_us


def measure(fn: Callable[[], object], *, number: int, repeat: int = 7) -> float:
    """Median microseconds per call of `fn()` over `repeat` runs of `number` calls."""
    fn()  # warm up (caches, memo tables)
    timings = timeit.repeat(fn, number=number, repeat=repeat)
    return statistics.median(timings) / number * 1e6
