"""Writes for pricing: the bundled-data sync, staff edits, organization
overrides and re-pricing the ledger. Every price write bumps the price
version so each process's engine snapshot reloads (pricing.engine)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import F, QuerySet

from accounts.models import Organization
from pricing import engine
from pricing.genai_import import flatten, genai_providers
from pricing.models import (
    PRICE_EPOCH,
    PRICE_PLACES,
    ModelPrice,
    PriceFields,
    PriceOverride,
    PriceSource,
    PricingVersion,
    Provider,
)
from pricing.selectors import VERSION_CACHE_KEY, VERSION_CACHE_SECONDS

__all__ = [
    "PricingError",
    "SyncReport",
    "model_price_admin_save",
    "model_price_delete_many",
    "price_override_create",
    "price_override_delete",
    "price_override_update",
    "prices_sync",
    "pricing_version_bump",
    "provider_admin_save",
]

logger = logging.getLogger(__name__)
_QUANTUM = Decimal(1).scaleb(-PRICE_PLACES)
# Fields sync owns on a genai-prices row; identity is (provider, model_id,
# effective_from, time_window).
_SYNCED_FIELDS = ("name", "match_rules", "match_order", "tiers", "notes", *PriceFields.PRICE_NAMES)


class PricingError(Exception):
    """A request that breaks a pricing rule; the message is for the user."""


def pricing_version_bump() -> int:
    """Move the price version on; caches learn it when the transaction commits."""
    if not PricingVersion.objects.filter(pk=1).update(version=F("version") + 1):
        PricingVersion.objects.get_or_create(pk=1, defaults={"version": 1})
    version = PricingVersion.objects.values_list("version", flat=True).get(pk=1)

    def publish() -> None:
        cache.set(VERSION_CACHE_KEY, version, VERSION_CACHE_SECONDS)
        engine.snapshot_mark_stale()

    transaction.on_commit(publish)
    return version


# --- sync from genai-prices -----------------------------------------------------


@dataclass
class SyncReport:
    source: str = "bundled"
    providers_added: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)  # "provider/model@date"
    changed: list[str] = field(default_factory=list)
    skipped_admin: list[str] = field(default_factory=list)
    skipped_unpriced: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def touched(self) -> bool:
        return bool(self.providers_added or self.added or self.changed)

    def summary(self) -> str:
        return (
            f"Prices from genai-prices ({self.source}): {len(self.added)} added, "
            f"{len(self.changed)} changed, {self.unchanged} unchanged, "
            f"{len(self.skipped_admin)} skipped (edited by staff), "
            f"{len(self.skipped_unpriced)} skipped (not priced per token); "
            f"{len(self.providers_added)} providers added."
        )


def _q(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(_QUANTUM)


def _label(row: dict[str, Any]) -> str:
    when = "" if row["effective_from"] <= PRICE_EPOCH else f"@{row['effective_from']:%Y-%m-%d}"
    window = f"[{row['time_window']}]" if row["time_window"] else ""
    return f"{row['provider_slug']}/{row['model_id']}{when}{window}"


@transaction.atomic
def prices_sync(*, online: bool = False, providers: list[Any] | None = None) -> SyncReport:
    """Flatten genai-prices into Provider and ModelPrice rows. Idempotent.

    Adds new providers, models and effective-dated prices; updates rows it
    created earlier when the data changed; never touches a row staff created
    or edited (source=admin) nor an existing provider. `online` first tries
    genai-prices' published update (best-effort; falls back to bundled data).
    """
    report = SyncReport()
    if providers is None:
        providers, report.source = genai_providers(online=online)
    data = flatten(providers)
    report.skipped_unpriced = data.skipped

    existing_slugs = set(Provider.objects.values_list("slug", flat=True))
    new_providers = [p for p in data.providers if p.slug not in existing_slugs]
    Provider.objects.bulk_create(
        [
            Provider(
                slug=p.slug,
                name=p.name,
                api_style=p.api_style,
                base_url=p.base_url,
                model_match=p.model_match,
            )
            for p in new_providers
        ]
    )
    report.providers_added = [p.slug for p in new_providers]
    provider_ids = dict(Provider.objects.values_list("slug", "pk"))

    current = {
        (r.provider_id, r.model_id, r.effective_from, r.time_window): r
        for r in ModelPrice.objects.only(
            "pk",
            "source",
            "provider_id",
            "model_id",
            "effective_from",
            "time_window",
            *_SYNCED_FIELDS,
        )
    }
    to_create: list[ModelPrice] = []
    to_update: list[ModelPrice] = []
    for row in data.rows:
        values = {name: row[name] for name in _SYNCED_FIELDS}
        for name in PriceFields.PRICE_NAMES:
            values[name] = _q(values[name])
        provider_id = provider_ids[row["provider_slug"]]
        found = current.get(
            (provider_id, row["model_id"], row["effective_from"], row["time_window"])
        )
        if found is None:
            to_create.append(
                ModelPrice(
                    provider_id=provider_id,
                    model_id=row["model_id"],
                    effective_from=row["effective_from"],
                    time_window=row["time_window"],
                    source=PriceSource.GENAI_PRICES,
                    **values,
                )
            )
            report.added.append(_label(row))
        elif found.source == PriceSource.ADMIN:
            report.skipped_admin.append(_label(row))
        elif any(getattr(found, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(found, name, value)
            to_update.append(found)
            report.changed.append(_label(row))
        else:
            report.unchanged += 1
    ModelPrice.objects.bulk_create(to_create, batch_size=500)
    ModelPrice.objects.bulk_update(to_update, list(_SYNCED_FIELDS), batch_size=500)
    if report.touched:
        pricing_version_bump()
    return report


# --- staff edits (admin) ---------------------------------------------------------


def model_price_admin_save(*, price: ModelPrice) -> ModelPrice:
    """Save a price staff created or edited; it becomes source=admin, so a
    later sync never overwrites it."""
    price.source = PriceSource.ADMIN
    price.save()
    pricing_version_bump()
    return price


def model_price_delete_many(*, prices: QuerySet[ModelPrice]) -> int:
    count, _ = prices.delete()
    pricing_version_bump()
    return count


def provider_admin_save(*, provider: Provider) -> Provider:
    provider.save()
    pricing_version_bump()
    return provider


# --- organization overrides ------------------------------------------------------


def _override_clean(
    *,
    organization: Organization,
    provider: str,
    model: str,
    prices: dict[str, Decimal | None],
    effective_from: datetime | None,
    exclude_pk: int | None = None,
) -> tuple[str, str, dict[str, Decimal | None], datetime]:
    model = model.strip()
    provider = provider.strip().lower()
    if not model:
        raise PricingError("Name the model as your calls name it, e.g. gpt-4o or my-finetune.")
    unknown = set(prices) - set(PriceFields.PRICE_NAMES)
    if unknown:
        raise PricingError(f"Unknown price fields: {', '.join(sorted(unknown))}.")
    if prices.get("input") is None and prices.get("output") is None:
        raise PricingError("Set at least an input or an output price (USD per million tokens).")
    if any(v is not None and v < 0 for v in prices.values()):
        raise PricingError("Prices cannot be negative.")
    effective_from = effective_from or PRICE_EPOCH
    clash = PriceOverride.objects.filter(
        organization=organization,
        provider=provider,
        model__iexact=model,
        effective_from=effective_from,
    )
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise PricingError(
            f"You already have a price for {model} with the same start; edit that one instead."
        )
    return provider, model, {k: _q(v) for k, v in prices.items()}, effective_from


@transaction.atomic
def price_override_create(
    *,
    organization: Organization,
    created_by,
    provider: str,
    model: str,
    prices: dict[str, Decimal | None],
    effective_from: datetime | None = None,
    notes: str = "",
) -> PriceOverride:
    """The organization's own price for a model (USD per Mtok; effective_from
    None: for all calls, past and future). Wins over the global table."""
    provider, model, prices, effective_from = _override_clean(
        organization=organization,
        provider=provider,
        model=model,
        prices=prices,
        effective_from=effective_from,
    )
    override = PriceOverride.objects.create(
        organization=organization,
        provider=provider,
        model=model,
        effective_from=effective_from,
        notes=notes,
        created_by=created_by,
        **prices,
    )
    pricing_version_bump()
    return override


@transaction.atomic
def price_override_update(
    *,
    organization: Organization,
    override: PriceOverride,
    provider: str,
    model: str,
    prices: dict[str, Decimal | None],
    effective_from: datetime | None = None,
    notes: str = "",
) -> PriceOverride:
    if override.organization_id != organization.pk:
        raise PricingError("That price belongs to another organization.")
    provider, model, prices, effective_from = _override_clean(
        organization=organization,
        provider=provider,
        model=model,
        prices=prices,
        effective_from=effective_from,
        exclude_pk=override.pk,
    )
    override.provider, override.model = provider, model
    override.effective_from, override.notes = effective_from, notes
    for name in PriceFields.PRICE_NAMES:
        setattr(override, name, prices.get(name))
    override.save()
    pricing_version_bump()
    return override


@transaction.atomic
def price_override_delete(*, organization: Organization, override: PriceOverride) -> None:
    if override.organization_id != organization.pk:
        raise PricingError("That price belongs to another organization.")
    override.delete()
    pricing_version_bump()
