"""Reads for pricing. Tenant reads (overrides, unpriced calls) take the
organization first; the global price book is not tenant data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db.models import F, OuterRef, Q, QuerySet, Subquery, Sum
from django.http import Http404
from django.utils import timezone

from accounts.models import Organization
from pricing.models import ModelPrice, PriceFields, PriceOverride, PricingVersion, Provider

VERSION_CACHE_KEY = "pricing:version"
# How long a process trusts the cached version number when nobody bumps it
# through this cache (e.g. per-process local-memory caches on a laptop).
VERSION_CACHE_SECONDS = 30
_PRICE_VALUES = (*PriceFields.PRICE_NAMES, "effective_from")


def provider_upstreams_all() -> dict[str, tuple[str, str]]:
    """slug → (base_url, api_style) of active providers with a base URL (for the proxy)."""
    rows = Provider.objects.filter(is_active=True).exclude(base_url="")
    return {
        slug: (base_url.rstrip("/"), api_style)
        for slug, base_url, api_style in rows.values_list("slug", "base_url", "api_style")
    }


def provider_list() -> QuerySet[Provider]:
    return Provider.objects.all()


def pricing_version_read() -> int:
    """The price book's version: the shared cache, else the database row."""
    version = cache.get(VERSION_CACHE_KEY)
    if version is None:
        version = PricingVersion.objects.filter(pk=1).values_list("version", flat=True).first() or 0
        cache.set(VERSION_CACHE_KEY, version, VERSION_CACHE_SECONDS)
    return version


# --- what the engine loads (every row, every organization) ---------------------


def provider_rows_for_engine() -> list[dict[str, Any]]:
    rows = Provider.objects.values("slug", "model_match", "base_url", "api_style", "is_active")
    return [dict(row) for row in rows]


def model_price_rows_for_engine() -> list[dict[str, Any]]:
    """Every global price row, as plain dicts keyed like the model's fields."""
    return list(
        ModelPrice.objects.order_by()
        .values(
            "model_id",
            "match_rules",
            "match_order",
            "time_window",
            "tiers",
            *_PRICE_VALUES,
            provider_slug=F("provider__slug"),
        )
        .iterator(chunk_size=2000)
    )


def price_override_rows_all_orgs() -> list[dict[str, Any]]:
    """Every organization's overrides: the engine keys them by organization id."""
    return list(
        PriceOverride.objects.order_by().values(
            "organization_id", "provider", "model", *_PRICE_VALUES
        )
    )


# --- the public price list and staff views ------------------------------------


def model_price_current_list(
    *, query: str = "", provider: str = "", at: datetime | None = None
) -> QuerySet[ModelPrice]:
    """Each model's all-day price in effect at `at` (default now), searchable."""
    at = at or timezone.now()
    latest = (
        ModelPrice.objects.filter(
            provider=OuterRef("provider"),
            model_id=OuterRef("model_id"),
            time_window="",
            effective_from__lte=at,
        )
        .order_by("-effective_from")
        .values("pk")[:1]
    )
    rows = ModelPrice.objects.filter(time_window="", pk=Subquery(latest)).select_related("provider")
    if provider:
        rows = rows.filter(provider__slug=provider)
    for word in query.split():
        rows = rows.filter(
            Q(model_id__icontains=word)
            | Q(name__icontains=word)
            | Q(provider__slug__icontains=word)
            | Q(provider__name__icontains=word)
        )
    return rows.order_by("provider__name", "model_id")


def model_price_history(*, provider_id: int, model_id: str) -> QuerySet[ModelPrice]:
    """Every price a model has had at one provider, newest first."""
    return ModelPrice.objects.filter(provider_id=provider_id, model_id=model_id).order_by(
        "-effective_from", "time_window"
    )


# --- tenant reads -------------------------------------------------------------


def price_override_list(*, organization: Organization) -> QuerySet[PriceOverride]:
    """The organization's own prices, by model then newest first."""
    return PriceOverride.objects.filter(organization=organization).select_related("created_by")


def price_override_get_for_org(*, organization: Organization, override_id: int) -> PriceOverride:
    """The override, or 404: the same answer for "missing" and "not yours"."""
    override = PriceOverride.objects.filter(organization=organization, pk=override_id).first()
    if override is None:
        raise Http404("No such price override.")
    return override


@dataclass(frozen=True)
class UnpricedModel:
    provider: str
    model: str
    calls: int


@dataclass(frozen=True)
class UnpricedSummary:
    calls: int
    models: list[UnpricedModel]


def unpriced_model_summary(
    *, organization: Organization, since: datetime | None = None
) -> UnpricedSummary:
    """Calls recorded without a price (priced=false), per model, from the rollups:
    "42 calls on 2 models have no price". `since` is a UTC moment (inclusive hour)."""
    from analytics.models import HourlyRollup

    rows = HourlyRollup.objects.filter(organization=organization, unpriced_calls__gt=0)
    if since is not None:
        rows = rows.filter(hour__gte=since.replace(minute=0, second=0, microsecond=0))
    models = [
        UnpricedModel(provider=r["provider"], model=r["model"], calls=r["calls"])
        for r in rows.values("provider", "model")
        .annotate(calls=Sum("unpriced_calls"))
        .order_by("-calls", "model")
    ]
    return UnpricedSummary(calls=sum(m.calls for m in models), models=models)
