"""GET /api/simulate and /api/simulate/features: the cost simulator (analytics.simulator)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from analytics.api.base import DATE_DOCS, OrgAPIView, money_str, period_json
from analytics.params import DATE_PARAMS, ParamError, parse_int, untagged_label, untagged_value
from analytics.simulator import Candidate, Simulation, UsedModel, simulate, simulate_features

SCOPE_PARAMS = {"feature": "feature", "customer_id": "customer", "model": "model"}
MAX_LIST = 2000


def parse_scope(params) -> tuple[str, str | None]:
    """(scope, value) from at most one of feature / customer_id / model."""
    given = [(name, params.get(name)) for name in SCOPE_PARAMS if params.get(name)]
    if len(given) > 1:
        raise ParamError(
            "Give at most one of feature, customer_id and model (none: the whole organization)."
        )
    if not given:
        return "organization", None
    ((name, raw),) = given
    return SCOPE_PARAMS[name], untagged_value(raw.strip())


def parse_max_drop(params) -> Decimal | None:
    raw = (params.get("max_score_drop") or "").strip()
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ParamError(f"max_score_drop must be a number of percent; got {raw!r}.") from None
    if not value.is_finite() or not 0 <= value <= 100:
        raise ParamError(f"max_score_drop must be between 0 and 100; got {raw!r}.")
    return value


def _tokens(used: UsedModel) -> dict[str, Any]:
    return {
        "provider": used.provider,
        "model": used.model,
        "calls": used.calls,
        **used.tokens,
        "max_input_tokens": used.max_input_tokens,
        "actual_cost": money_str(used.actual_cost),
        "unpriced_calls": used.unpriced_calls,
        "repriced_cost": None if used.repriced_cost is None else money_str(used.repriced_cost),
    }


def candidate_json(candidate: Candidate) -> dict[str, Any]:
    out = {
        "provider": candidate.provider,
        "model": candidate.model,
        "projected_cost": money_str(candidate.projected_cost),
        "saving": money_str(candidate.saving),
        "saving_percent": None
        if candidate.saving_percent is None
        else str(candidate.saving_percent),
        "context_window": candidate.context_window,
        "benchmarks": [
            {
                "benchmark": benchmark,
                "current_model": model,
                "current_score": str(current),
                "score": str(score),
            }
            for benchmark, model, current, score in candidate.scores
        ],
    }
    if candidate.reason:
        out["reason"] = candidate.reason
    return out


def simulation_json(sim: Simulation, *, limit: int) -> dict[str, Any]:
    def listed(candidates: list[Candidate]) -> dict[str, Any]:
        return {
            "count": len(candidates),
            "results": [candidate_json(c) for c in candidates[:limit]],
        }

    value = sim.value
    if value is not None and sim.scope in ("feature", "customer"):
        value = untagged_label(value)
    return {
        **period_json(sim.period),
        "currency": "USD",
        "scope": sim.scope,
        "value": value,
        "calls": sim.calls,
        "actual_cost": money_str(sim.actual_cost),
        "repriced_cost": money_str(sim.repriced_cost),
        "largest_input_tokens": sim.largest_input_tokens,
        "usage": [_tokens(m) for m in sim.used],
        "unpriced": [_tokens(m) for m in sim.unpriced],
        "max_score_drop": str(sim.max_score_drop),
        "benchmarks_known": sim.benchmarks_known,
        "candidates": listed(sim.candidates),
        "no_benchmark_data": listed(sim.no_benchmark_data),
        "below_quality": listed(sim.below_quality),
        "cannot_fit": listed(sim.cannot_fit),
    }


SIMULATE_DOCS = [
    *DATE_DOCS,
    *(
        OpenApiParameter(
            name, OpenApiTypes.STR, description=f"Simulate one {name} (at most one of the three)."
        )
        for name in SCOPE_PARAMS
    ),
    OpenApiParameter(
        "max_score_drop",
        OpenApiTypes.NUMBER,
        description="Hide candidates more than this many percent below the current model on "
        "a shared benchmark (default AISPENDTRACK_SIMULATOR_MAX_SCORE_DROP, 10).",
    ),
    OpenApiParameter(
        "limit", OpenApiTypes.INT, description="Candidates listed per group (default 100)."
    ),
]


class SimulateView(OrgAPIView):
    allowed_params = (*DATE_PARAMS, *SCOPE_PARAMS, "max_score_drop", "limit")
    default_range = "30d"

    @extend_schema(
        summary="Re-price a scope's usage on every other priced model",
        description="Actual cost (the ledger's), the same usage at today's prices of its own "
        "models, and per candidate the projected cost and saving, split into safe candidates, "
        "no benchmark data, below the quality bar and cannot take the workload (context "
        "window). Default period: the last 30 days.",
        parameters=SIMULATE_DOCS,
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        params = request.query_params
        scope, value = parse_scope(params)
        limit = parse_int(params, "limit", default=100, minimum=1, maximum=MAX_LIST)
        sim = simulate(
            organization=self.organization,
            period=self.period(),
            scope=scope,
            value=value,
            max_score_drop=parse_max_drop(params),
        )
        return Response(simulation_json(sim, limit=limit))


class SimulateFeaturesView(OrgAPIView):
    allowed_params = (*DATE_PARAMS, "max_score_drop", "limit")
    default_range = "30d"

    @extend_schema(
        summary="Each feature's best safe saving, biggest first",
        parameters=[*DATE_DOCS, *SIMULATE_DOCS[-2:]],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        params = request.query_params
        period = self.period()
        limit = parse_int(params, "limit", default=100, minimum=1, maximum=500)
        rows = simulate_features(
            organization=self.organization,
            period=period,
            max_score_drop=parse_max_drop(params),
            limit=limit,
        )
        return Response(
            {
                **period_json(period),
                "currency": "USD",
                "results": [
                    {
                        "feature": untagged_label(row.feature),
                        "actual_cost": money_str(row.actual_cost),
                        "models": row.models,
                        "best": None if row.best is None else candidate_json(row.best),
                    }
                    for row in rows
                ],
            }
        )
