"""Realistic demo usage for an organization: written through the real ledger path.

Several providers and models with their list prices, a long (Zipf) tail of
customers that each stick to an environment and a few features, features that
prefer certain models, agent traces of several calls, streams, errors, and a
model with no price. Deterministic for a given seed; request ids are derived
from the seed, so running the same command twice adds nothing.
"""

from __future__ import annotations

import math
import random
import time
from bisect import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from analytics.fold import rollups_fold_until_done
from analytics.models import Status
from analytics.records import UsageRecord
from analytics.services import usage_record_batch
from pricing.usage import Usage

PER_MILLION = Decimal("0.000001")

# model: (provider, endpoint, input $/M, output $/M, cached input $/M); None = no price
MODELS: dict[str, tuple[str, str, Decimal | None, Decimal | None, Decimal | None]] = {
    "gpt-4o": ("openai", "/v1/chat/completions", Decimal("2.5"), Decimal(10), Decimal("1.25")),
    "gpt-4o-mini": (
        "openai",
        "/v1/chat/completions",
        Decimal("0.15"),
        Decimal("0.6"),
        Decimal("0.075"),
    ),
    "o3": ("openai", "/v1/responses", Decimal(2), Decimal(8), Decimal("0.5")),
    "text-embedding-3-small": ("openai", "/v1/embeddings", Decimal("0.02"), Decimal(0), None),
    "claude-sonnet-4": ("anthropic", "/v1/messages", Decimal(3), Decimal(15), Decimal("0.3")),
    "claude-3-5-haiku": ("anthropic", "/v1/messages", Decimal("0.8"), Decimal(4), Decimal("0.08")),
    "claude-opus-4": ("anthropic", "/v1/messages", Decimal(15), Decimal(75), Decimal("1.5")),
    "gemini-2.5-flash": (
        "gemini",
        "/v1beta/models:generateContent",
        Decimal("0.3"),
        Decimal("2.5"),
        None,
    ),
    "gemini-2.5-pro": (
        "gemini",
        "/v1beta/models:generateContent",
        Decimal("1.25"),
        Decimal(10),
        None,
    ),
    "llama-3.1-70b-instruct": ("together", "/v1/chat/completions", None, None, None),
}

# feature: (share of calls, [(model, weight)], mean input tokens, mean output tokens)
FEATURES: dict[str, tuple[float, list[tuple[str, float]], int, int]] = {
    "chat": (0.34, [("gpt-4o-mini", 6), ("gpt-4o", 3), ("claude-sonnet-4", 2)], 1200, 350),
    "search": (0.18, [("gpt-4o-mini", 5), ("gemini-2.5-flash", 4)], 2500, 180),
    "summarize": (0.12, [("claude-3-5-haiku", 5), ("gpt-4o-mini", 3)], 6000, 400),
    "agent": (0.10, [("claude-sonnet-4", 5), ("o3", 2), ("claude-opus-4", 1)], 8000, 900),
    "embed": (0.12, [("text-embedding-3-small", 1)], 600, 0),
    "classify": (0.07, [("gpt-4o-mini", 4), ("gemini-2.5-flash", 2)], 400, 8),
    "extract": (
        0.04,
        [("gemini-2.5-pro", 3), ("gpt-4o", 2), ("llama-3.1-70b-instruct", 1)],
        3000,
        500,
    ),
    "": (0.03, [("gpt-4o-mini", 3), ("gpt-4o", 1)], 800, 200),  # untagged
}
ENVIRONMENTS = (("production", 0.88), ("staging", 0.09), ("development", 0.03))
STATUSES = (
    (Status.SUCCESS, 0.965),
    (Status.UPSTREAM_ERROR, 0.012),
    (Status.RATE_LIMITED, 0.01),
    (Status.CLIENT_ERROR, 0.008),
    (Status.TIMEOUT, 0.003),
    (Status.CANCELLED, 0.002),
)
HTTP_STATUS = {
    Status.SUCCESS: 200,
    Status.UPSTREAM_ERROR: 500,
    Status.RATE_LIMITED: 429,
    Status.CLIENT_ERROR: 400,
    Status.TIMEOUT: 504,
    Status.CANCELLED: 499,
}
# Share of a day's calls in each UTC hour: a working-day hump.
HOURS = [0.4 + math.exp(-(((h - 15) / 4.5) ** 2)) for h in range(24)]


@dataclass(slots=True)
class _Customer:
    id: str
    environment: str
    features: list[str]
    feature_cum: list[float]  # cumulative weights
    plan: str


def _cum(weights: list[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def _pick(draw: Callable[[], float], cum: list[float]) -> int:
    """The index `random.choices(range(len(cum)), cum_weights=cum)[0]` picks,
    from the same single draw: its own arithmetic without its per-call checks
    (a third of the generator's time), so a seed yields the records it always did."""
    return bisect(cum, draw() * (cum[-1] + 0.0), 0, len(cum) - 1)


class DemoGenerator:
    """Yields UsageRecords for one organization; same seed, same records."""

    def __init__(
        self,
        *,
        organization_id: int,
        key_ids: dict[str, int],
        days: int,
        events: int,
        seed: int,
        end: datetime,
        customers: int | None = None,
    ):
        self.rng = random.Random(seed)  # noqa: S311 (demo data, reproducible by design)
        self.organization_id = organization_id
        self.key_ids = key_ids
        self.days = days
        self.events = events
        self.seed = seed
        self.end = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        n_customers = customers or min(5000, max(40, events // 400))
        self.customers = [self._customer(n) for n in range(n_customers)]
        zipf = [1 / (rank + 1) ** 1.1 for rank in range(n_customers)]
        self.customer_cum = _cum(zipf)
        self.model_cum = {
            f: (_cum([w for _, w in spec[1]]), [m for m, _ in spec[1]])
            for f, spec in FEATURES.items()
        }
        self.hour_cum = _cum(HOURS)
        self.status_values = [s for s, _ in STATUSES]
        self.status_cum = _cum([w for _, w in STATUSES])
        self.trace: tuple[str, int] | None = None

    def _customer(self, n: int) -> _Customer:
        rng = self.rng
        env = rng.choices([e for e, _ in ENVIRONMENTS], [w for _, w in ENVIRONMENTS])[0]
        names = [f for f in FEATURES if f]
        chosen = rng.sample(names, rng.randint(2, 4))
        weights = [FEATURES[f][0] * rng.uniform(0.5, 1.5) for f in chosen]
        prefix = rng.choice(("acct", "org", "team", "user", "cust"))
        plan = rng.choice(("free", "pro", "pro", "enterprise"))
        return _Customer(f"{prefix}_{n:05d}", env, chosen, _cum(weights), plan)

    def _cost(self, model: str, usage: Usage) -> Decimal | None:
        _, _, price_in, price_out, price_cached = MODELS[model]
        if price_in is None or price_out is None:
            return None
        cached = usage.cached_input_tokens
        fresh = usage.input_tokens - cached
        total = fresh * price_in + usage.output_tokens * price_out
        total += cached * (price_cached if price_cached is not None else price_in)
        return total * PER_MILLION

    def __iter__(self) -> Iterator[UsageRecord]:
        rng = self.rng
        start = self.end - timedelta(days=self.days)
        # Weekdays carry more traffic than weekends.
        day_weights = [
            1.0 if (start + timedelta(days=d)).weekday() < 5 else 0.55 for d in range(self.days)
        ]
        # Calls per hour, in time order (as the proxy writes them): batches then
        # cover an hour or two, so their rollup buckets collapse as in production.
        weights = [day_weights[d] * HOURS[h] for d in range(self.days) for h in range(24)]
        scale = self.events / sum(weights)
        counts = [int(w * scale) for w in weights]
        for extra in range(self.events - sum(counts)):
            counts[extra % len(counts)] += 1
        n = -1
        for slot, count in enumerate(counts):
            slot_start = start + timedelta(hours=slot)
            offsets = sorted(rng.randrange(3600) for _ in range(count))
            for offset in offsets:
                n += 1
                yield self._record(n, slot_start + timedelta(seconds=offset))

    def _record(self, n: int, at: datetime) -> UsageRecord:
        rng = self.rng
        draw = rng.random
        if draw() < 0.05:
            customer = None
            feature = rng.choice(("chat", "search", ""))
            env = "production"
        else:
            customer = self.customers[_pick(draw, self.customer_cum)]
            feature = customer.features[_pick(draw, customer.feature_cum)]
            env = customer.environment
        cum, models = self.model_cum[feature]
        model = models[_pick(draw, cum)]
        provider, endpoint, *_ = MODELS[model]
        _, _, mean_in, mean_out = FEATURES[feature]
        status = self.status_values[_pick(draw, self.status_cum)]
        input_tokens = max(1, int(rng.lognormvariate(math.log(mean_in), 0.7)))
        output_tokens = int(rng.lognormvariate(math.log(mean_out), 0.8)) if mean_out else 0
        cached = int(input_tokens * rng.uniform(0.3, 0.9)) if rng.random() < 0.3 else 0
        if status != Status.SUCCESS:
            output_tokens = 0 if status != Status.CANCELLED else output_tokens // 3
            if status in (Status.RATE_LIMITED, Status.CLIENT_ERROR):
                input_tokens = cached = 0
        usage = Usage(
            input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached
        )
        trace_id = ""
        if feature == "agent":
            if self.trace is None or self.trace[1] <= 0:
                self.trace = (f"run_{self.seed}_{n:09d}", rng.randint(3, 8))
            trace_id, self.trace = self.trace[0], (self.trace[0], self.trace[1] - 1)
        streamed = feature in ("chat", "agent") and rng.random() < 0.6
        latency = int(rng.lognormvariate(math.log(300 + output_tokens * 8), 0.4))
        return UsageRecord(
            request_id=f"demo_{self.seed}_{self.organization_id}_{n:010d}",
            organization_id=self.organization_id,
            api_key_id=self.key_ids.get(env),
            created_at=at,
            provider=provider,
            endpoint=endpoint,
            status=status,
            model=model,
            response_model=model,
            customer_id=customer.id if customer else "",
            feature=feature,
            trace_id=trace_id,
            environment=env,
            properties={"plan": customer.plan} if customer else {},
            usage=usage,
            cost=self._cost(model, usage),
            http_status=HTTP_STATUS[status],
            latency_ms=latency,
            ttfb_ms=min(latency, int(latency * rng.uniform(0.1, 0.4))) if streamed else None,
            streamed=streamed,
            upstream_request_id=f"up_{n:010d}",
        )


def demo_usage_write(
    generator: DemoGenerator,
    *,
    batch_size: int = 5000,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[int, float]:
    """Write the generator's records in batches through usage_record_batch,
    folding the derived rollups as the fold loop would.

    Returns (new events, seconds). `progress(done, new, elapsed)` after each batch.
    """
    started = time.monotonic()
    batch: list[UsageRecord] = []
    done = new = 0
    for record in generator:
        batch.append(record)
        if len(batch) >= batch_size:
            new += usage_record_batch(batch)
            rollups_fold_until_done()  # keep the delta log short while seeding
            done += len(batch)
            batch = []
            if progress:
                progress(done, new, time.monotonic() - started)
    if batch:
        new += usage_record_batch(batch)
        done += len(batch)
    rollups_fold_until_done()  # the dashboards show the seeded data at once
    return new, time.monotonic() - started
