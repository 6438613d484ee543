"""The cost simulator: a scope's real token usage, re-priced on every other model.

A scope is the organization, one feature, one customer or one model, over a
period of local days. Its usage comes from UsageShapeRollup (never events):
token sums per model and input band, with the largest single input. Each band
is re-priced with the cost engine's own functions (`pricing.engine`): the
current models through `usage_prices`, exactly as the ledger priced them, and
every model of the price book through `entry_prices`, at today's prices and
the context tier of the band. So re-pricing the current model at unchanged
prices gives back the ledger's cost to the 10th decimal (each call's cost is
exact at 10 places for prices given to $0.000001 per Mtok; the bands make
tiers exact).

What is compared is the usage of models priced today; usage of a model with
no price is reported apart (its ledger cost is not known, so no saving is).
A candidate is "safe" when its context window (genai-prices' bundled data)
takes the largest input seen and, on every benchmark it shares with a current
model, its score is not more than `max_score_drop` % below that model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import F, Max, Sum
from django.utils import timezone

from analytics.models import SHAPE_TOKENS, UsageShapeRollup
from analytics.params import UsageFilters
from analytics.periods import Period
from analytics.selectors import spend_breakdown
from analytics.selectors._common import ZERO, cost_sum, money, rollup_rows
from analytics.shapes import band_floor
from pricing.benchmarks import benchmark_scores_all
from pricing.engine import (
    cost_decimal,
    cost_units,
    entry_prices,
    model_resolve,
    priced_entries,
    usage_prices,
)
from pricing.genai_import import context_windows_bundled
from pricing.usage import Usage

SCOPES = ("organization", "feature", "customer", "model")
PERCENT = Decimal("0.01")
MISSING = object()


def default_max_score_drop() -> Decimal:
    return Decimal(str(getattr(settings, "AISPENDTRACK_SIMULATOR_MAX_SCORE_DROP", 10)))


@dataclass(slots=True)
class UsedModel:
    """One model of the scope: its tokens (all bands) and what the ledger charged."""

    provider: str
    model: str
    calls: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHAPE_TOKENS, 0))
    max_input_tokens: int = 0
    bands: dict[int, Usage] = field(default_factory=dict)
    actual_cost: Decimal = ZERO  # the ledger's, over the period
    unpriced_calls: int = 0  # recorded without a price (not in actual_cost)
    repriced_cost: Decimal | None = None  # today's price of its own model; None: unpriced
    canonical: tuple[str, str] | None = None  # (provider, model id) it is priced as


@dataclass(slots=True)
class Candidate:
    provider: str
    model: str
    projected_cost: Decimal
    saving: Decimal
    saving_percent: Decimal | None
    context_window: int | None
    # benchmark → (current model, its score, this model's score), shared benchmarks only
    scores: list[tuple[str, str, Decimal, Decimal]] = field(default_factory=list)
    reason: str = ""  # why it is not in the main list


@dataclass(slots=True)
class Simulation:
    period: Period
    scope: str
    value: str | None
    used: list[UsedModel]  # priced today: what is compared
    unpriced: list[UsedModel]  # no price today: reported, not compared
    actual_cost: Decimal  # ledger cost of `used`
    repriced_cost: Decimal  # `used` at today's prices of its own models
    largest_input_tokens: int
    candidates: list[Candidate]  # fit and pass the quality filter (safe)
    no_benchmark_data: list[Candidate]  # fit, no shared benchmark to compare
    below_quality: list[Candidate]  # fit, hidden by the quality filter
    cannot_fit: list[Candidate]  # context window too small or unknown
    benchmarks_known: bool  # is the benchmark table non-empty?
    max_score_drop: Decimal

    @property
    def calls(self) -> int:
        return sum(model.calls for model in (*self.used, *self.unpriced))

    @property
    def best(self) -> Candidate | None:
        """The biggest safe saving, if any candidate is cheaper."""
        cheaper = [c for c in self.candidates if c.saving > 0]
        return cheaper[0] if cheaper else None


def _shape_query(*, organization, period: Period, lookup: dict[str, Any], group: tuple[str, ...]):
    sums = {f"s_{name}": Sum(name) for name in ("calls", *SHAPE_TOKENS)}
    return (
        UsageShapeRollup.objects.filter(
            organization=organization,
            hour__gte=period.start_utc,
            hour__lt=period.end_utc,
            **lookup,
        )
        .values(*group)
        .annotate(**sums, s_max=Max("max_input_tokens"))
        .order_by()
    )


def _add_band(used: UsedModel, row: dict) -> None:
    used.calls += row["s_calls"]
    for name in SHAPE_TOKENS:
        used.tokens[name] += row[f"s_{name}"]
    used.max_input_tokens = max(used.max_input_tokens, row["s_max"])
    used.bands[row["band"]] = Usage(**{name: row[f"s_{name}"] for name in SHAPE_TOKENS})


def _reprice_own(organization, used: UsedModel, at: datetime) -> Decimal | None:
    units = 0
    for band, usage in used.bands.items():
        prices = usage_prices(
            organization=organization,
            provider=used.provider,
            model=used.model,
            input_tokens=band_floor(band),
            at=at,
        )
        if prices is None:
            return None
        units += cost_units(prices, usage)
    return cost_decimal(units)


def _band_totals(used: list[UsedModel]) -> dict[int, Usage]:
    """The scope's usage per band, all its priced models together (prices are linear)."""
    out: dict[int, Usage] = {}
    for model in used:
        for band, usage in model.bands.items():
            into = out.setdefault(band, Usage())
            for name in SHAPE_TOKENS:
                setattr(into, name, getattr(into, name) + getattr(usage, name))
    return out


def _model_scores(scores: dict[str, dict[str, Decimal]], used: UsedModel) -> dict[str, Decimal]:
    names = [used.model.lower()]
    if used.canonical is not None:
        names.insert(0, used.canonical[1].lower())
    for name in names:
        if name in scores:
            return scores[name]
    return {}


def _quality(
    candidate: Candidate,
    own: dict[str, Decimal],
    current: list[tuple[str, dict[str, Decimal]]],
    max_drop: Decimal,
) -> str:
    """ "ok", "no_data" or "below" (with `candidate.reason` saying why)."""
    shared = 0
    for model, theirs in current:
        for benchmark, score in sorted(theirs.items()):
            if benchmark not in own:
                continue
            shared += 1
            mine = own[benchmark]
            candidate.scores.append((benchmark, model, score, mine))
            if score > 0 and (score - mine) / score * 100 > max_drop:
                drop = ((score - mine) / score * 100).quantize(Decimal("0.1"))
                candidate.reason = (
                    f"{benchmark}: {mine} vs {score} for {model} (−{drop} %, "
                    f"more than the {max_drop} % allowed)"
                )
                return "below"
    return "ok" if shared else "no_data"


def _candidates(
    *,
    organization,
    used: list[UsedModel],
    actual: Decimal,
    largest: int,
    at: datetime,
    scores: dict[str, dict[str, Decimal]],
    max_drop: Decimal,
    price_book: dict[tuple[str, str, int], Any] | None = None,
) -> tuple[list[Candidate], list[Candidate], list[Candidate], list[Candidate]]:
    """Every priced model's projected cost for `used`, in four groups (see Simulation).
    `price_book` memoises each model's prices per band across the scopes of one call."""
    price_book = {} if price_book is None else price_book
    bands = _band_totals(used)
    current = [(m.canonical[1] if m.canonical else m.model, _model_scores(scores, m)) for m in used]
    current = [(name, own) for name, own in current if own]
    only = {m.canonical for m in used}
    windows = context_windows_bundled()
    safe: list[Candidate] = []
    no_data: list[Candidate] = []
    below: list[Candidate] = []
    cannot: list[Candidate] = []
    for entry in priced_entries():
        if len(only) == 1 and (entry.provider, entry.model_id) in only:
            continue  # "every other model": the scope already runs on this one
        units = 0
        free = True
        for band, usage in bands.items():
            key = (entry.provider, entry.model_id, band)
            prices = price_book.get(key, MISSING)
            if prices is MISSING:  # the same for every scope: priced once per call
                prices = price_book[key] = entry_prices(
                    organization=organization, entry=entry, input_tokens=band_floor(band), at=at
                )
            if prices is None:
                break
            free = free and not any(prices)
            units += cost_units(prices, usage)
        else:
            if free and bands:
                continue  # no price at all in the data ("free"): nothing to project
            projected = cost_decimal(units)
            saving = actual - projected
            window = windows.get((entry.provider, entry.model_id.lower()))
            candidate = Candidate(
                provider=entry.provider,
                model=entry.model_id,
                projected_cost=projected,
                saving=saving,
                saving_percent=(saving / actual * 100).quantize(PERCENT) if actual else None,
                context_window=window,
            )
            if window is None:
                candidate.reason = "context window unknown (not in genai-prices' data)"
                cannot.append(candidate)
                continue
            if window < largest:
                candidate.reason = (
                    f"context window {window:,} tokens < largest input {largest:,} tokens"
                )
                cannot.append(candidate)
                continue
            own = scores.get(entry.model_id.lower(), {})
            verdict = _quality(candidate, own, current, max_drop)
            {"ok": safe, "no_data": no_data, "below": below}[verdict].append(candidate)
    for group in (safe, no_data, below, cannot):
        group.sort(key=lambda c: (c.projected_cost, c.provider, c.model))
    return safe, no_data, below, cannot


def _scope_filters(scope: str, value: str | None) -> UsageFilters | None:
    if scope == "organization":
        return None
    if scope == "feature":
        return UsageFilters(feature=value)
    if scope == "customer":
        return UsageFilters(customer_id=value)
    return UsageFilters(model=value)


def _used_models(
    organization, period: Period, scope: str, value: str | None, at: datetime
) -> tuple[list[UsedModel], list[UsedModel]]:
    filters = _scope_filters(scope, value)
    lookup = filters.lookup() if filters is not None else {}
    by_key: dict[tuple[str, str], UsedModel] = {}
    rows = _shape_query(
        organization=organization, period=period, lookup=lookup, group=("provider", "model", "band")
    )
    for row in rows:
        key = (row["provider"], row["model"])
        used = by_key.get(key) or by_key.setdefault(key, UsedModel(*key))
        _add_band(used, row)
    ledger = {
        t.key: t
        for t in spend_breakdown(
            organization=organization, period=period, by="model", filters=filters
        )
    }
    priced: list[UsedModel] = []
    unpriced: list[UsedModel] = []
    for used in sorted(by_key.values(), key=lambda u: (u.provider, u.model)):
        totals = ledger.get(used.model)
        if totals is not None:
            used.actual_cost, used.unpriced_calls = totals.cost, totals.unpriced_calls
        used.canonical = model_resolve(provider=used.provider, model=used.model)
        used.repriced_cost = _reprice_own(organization, used, at)
        (unpriced if used.repriced_cost is None else priced).append(used)
    _split_ledger_cost(priced)
    return priced, unpriced


def _split_ledger_cost(priced: list[UsedModel]) -> None:
    """The ledger groups by model name only: one name at two providers shares a total.
    Give it to the first and zero the rest so the scope's sum stays exact."""
    seen: set[str] = set()
    for used in priced:
        if used.model in seen:
            used.actual_cost = ZERO
        seen.add(used.model)


def simulate(
    *,
    organization,
    period: Period,
    scope: str = "organization",
    value: str | None = None,
    max_score_drop: Decimal | None = None,
    now: datetime | None = None,
) -> Simulation:
    """Re-price a scope's usage over `period` on every model of the price book.

    `scope` is one of SCOPES; `value` the feature, customer id or model ("" =
    untagged) unless the scope is the organization. Reads rollups only, of
    this organization only. Prices are today's (`now`), org overrides included.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    at = now or timezone.now()
    max_drop = default_max_score_drop() if max_score_drop is None else max_score_drop
    used, unpriced = _used_models(organization, period, scope, value, at)
    actual = sum((m.actual_cost for m in used), ZERO)
    largest = max((m.max_input_tokens for m in (*used, *unpriced)), default=0)
    scores = benchmark_scores_all()
    safe, no_data, below, cannot = (
        _candidates(
            organization=organization,
            used=used,
            actual=actual,
            largest=largest,
            at=at,
            scores=scores,
            max_drop=max_drop,
        )
        if used
        else ([], [], [], [])
    )
    return Simulation(
        period=period,
        scope=scope,
        value=value,
        used=used,
        unpriced=unpriced,
        actual_cost=actual,
        repriced_cost=sum((m.repriced_cost or ZERO for m in used), ZERO),
        largest_input_tokens=largest,
        candidates=safe,
        no_benchmark_data=no_data,
        below_quality=below,
        cannot_fit=cannot,
        benchmarks_known=bool(scores),
        max_score_drop=max_drop,
    )


@dataclass(slots=True)
class FeatureSaving:
    feature: str
    actual_cost: Decimal
    models: list[str]
    best: Candidate | None  # the biggest safe saving, None if no safe candidate is cheaper


def simulate_features(
    *,
    organization,
    period: Period,
    max_score_drop: Decimal | None = None,
    now: datetime | None = None,
    limit: int = 100,
) -> list[FeatureSaving]:
    """Each feature's best safe saving (the `limit` costliest features), biggest first.

    One rollup query for the token sums of every feature, one for the ledger's
    costs; then each feature is simulated in memory as `simulate` does.
    """
    at = now or timezone.now()
    max_drop = default_max_score_drop() if max_score_drop is None else max_score_drop
    rows = rollup_rows(organization=organization, period=period, by="feature")
    feature_col, model_col = rows.column("feature"), rows.column("model")
    costs: dict[str, dict[str, Decimal]] = {}
    for row in rows.qs.values(f=F(feature_col), m=F(model_col)).annotate(c=cost_sum()).order_by():
        costs.setdefault(row["f"], {})[row["m"]] = money(row["c"])
    top = sorted(costs, key=lambda f: (-sum(costs[f].values()), f))[:limit]
    shapes: dict[str, dict[tuple[str, str], UsedModel]] = {f: {} for f in top}
    for row in _shape_query(
        organization=organization,
        period=period,
        lookup={"feature__in": top},
        group=("feature", "provider", "model", "band"),
    ):
        models = shapes[row["feature"]]
        key = (row["provider"], row["model"])
        _add_band(models.get(key) or models.setdefault(key, UsedModel(*key)), row)
    scores = benchmark_scores_all()
    price_book: dict[tuple[str, str, int], Any] = {}
    out = []
    for feature in top:
        used = []
        for model in sorted(shapes[feature].values(), key=lambda u: (u.provider, u.model)):
            model.actual_cost = costs[feature].get(model.model, ZERO)
            model.canonical = model_resolve(provider=model.provider, model=model.model)
            model.repriced_cost = _reprice_own(organization, model, at)
            if model.repriced_cost is not None:
                used.append(model)
        _split_ledger_cost(used)
        actual = sum((m.actual_cost for m in used), ZERO)
        best = None
        if used:
            largest = max(m.max_input_tokens for m in shapes[feature].values())
            safe, *_ = _candidates(
                organization=organization,
                used=used,
                actual=actual,
                largest=largest,
                at=at,
                scores=scores,
                max_drop=max_drop,
                price_book=price_book,
            )
            cheaper = [c for c in safe if c.saving > 0]
            best = cheaper[0] if cheaper else None
        out.append(FeatureSaving(feature, actual, [m.model for m in used], best))
    # Biggest saving first; features without a safe saving after, costliest first.
    out.sort(
        key=lambda s: (s.best is None, -(s.best.saving if s.best else s.actual_cost), s.feature)
    )
    return out
