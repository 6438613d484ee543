"""Revenue from the customer's own Stripe account: paid invoices become revenue entries.

The owner pastes a restricted key (read access to customers and invoices). It
is stored encrypted with Fernet under a key derived from SECRET_KEY (HKDF-SHA256),
and only its last 4 characters are ever shown. `stripe_revenue_sync` lists the
account's customers and paid invoices (`amount_paid`, the invoice line's
period) and imports them with source `stripe` and the invoice id as
external_id, so a daily re-sync replaces and never double-counts. A Stripe
customer maps to our customer id by its metadata key (default
`aispendtrack_customer_id`), else by its Stripe id; revenue of Stripe
customers that match no customer in the ledger is reported as unmapped.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import stripe
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.utils import timezone

from accounts.models import Organization
from analytics.models import HourlyRollup, RevenueEntry, RevenueSettings, RevenueSource
from analytics.revenue import Rejection, revenue_import, revenue_settings_save

logger = logging.getLogger(__name__)
KEY_PREFIXES = ("rk_", "sk_")
CENTS = Decimal(100)


def _fernet() -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"aispendtrack revenue stripe key",
    ).derive(settings.SECRET_KEY.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def stripe_key_encrypt(raw: str) -> str:
    return _fernet().encrypt(raw.encode()).decode()


def stripe_key_decrypt(token: str) -> str:
    """The stored key in clear; ValueError if SECRET_KEY changed since it was saved."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError(
            "the stored Stripe key cannot be decrypted (SECRET_KEY changed?); paste it again"
        ) from None


def stripe_revenue_connect(
    *, organization: Organization, key: str, metadata_key: str
) -> RevenueSettings:
    """Store a restricted key (encrypted) and the metadata key that maps customers."""
    key = key.strip()
    if not key.startswith(KEY_PREFIXES) or len(key) < 12 or any(c.isspace() for c in key):
        raise ValueError(
            "paste a Stripe restricted key (rk_live_… or rk_test_…) with read access to "
            "customers and invoices"
        )
    metadata_key = metadata_key.strip() or "aispendtrack_customer_id"
    if len(metadata_key) > 40:
        raise ValueError("Stripe metadata keys are at most 40 characters")
    return revenue_settings_save(
        organization=organization,
        stripe_key_encrypted=stripe_key_encrypt(key),
        stripe_key_last4=key[-4:],
        stripe_metadata_key=metadata_key,
        stripe_sync_error="",
    )


def stripe_revenue_disconnect(*, organization: Organization) -> None:
    revenue_settings_save(organization=organization, stripe_key_encrypted="", stripe_key_last4="")


@dataclass
class StripeSync:
    invoices: int = 0
    created: int = 0
    updated: int = 0
    rejected: list[Rejection] = field(default_factory=list)


def _day(timestamp: int) -> date:
    return datetime.fromtimestamp(timestamp, tz=UTC).date()


def invoice_row(invoice: dict[str, Any], customer_ids: dict[str, str]) -> dict[str, Any]:
    """A paid invoice as a revenue row: amount_paid over its line's period.

    Stripe periods are [start, end) in unix seconds; the entry covers the UTC
    dates from start to the last second before end (one day if they are equal).
    """
    lines = (invoice.get("lines") or {}).get("data") or []
    period = lines[0].get("period") if lines else None
    start = (period or {}).get("start") or invoice.get("period_start") or invoice["created"]
    end = (period or {}).get("end") or invoice.get("period_end") or start
    currency = (invoice.get("currency") or "usd").lower()
    if currency != "usd":
        raise ValueError(f"currency {currency.upper()}: only USD revenue is supported")
    customer = invoice.get("customer") or ""
    return {
        "customer_id": customer_ids.get(customer, customer),
        "amount": str(Decimal(invoice.get("amount_paid") or 0) / CENTS),
        "period_start": _day(start).isoformat(),
        "period_end": _day(max(start, end - 1)).isoformat(),
        "external_id": invoice["id"],
    }


def stripe_revenue_sync(*, organization: Organization) -> StripeSync:
    """Import the account's paid invoices; records the time or the error on the settings."""
    config = RevenueSettings.objects.filter(organization=organization).first()
    if config is None or not config.stripe_key_encrypted:
        raise ValueError("no Stripe key is connected")
    try:
        result = _sync(organization, config)
    except (stripe.StripeError, ValueError) as error:
        message = getattr(error, "user_message", None) or str(error)
        revenue_settings_save(organization=organization, stripe_sync_error=message[:500])
        logger.warning(
            "Stripe revenue sync of organization %s failed: %s", organization.pk, message
        )
        raise
    revenue_settings_save(
        organization=organization, stripe_synced_at=timezone.now(), stripe_sync_error=""
    )
    return result


def _sync(organization: Organization, config: RevenueSettings) -> StripeSync:
    client = stripe.StripeClient(
        stripe_key_decrypt(config.stripe_key_encrypted),
        base_addresses={"api": settings.STRIPE_API_BASE},
        max_network_retries=1,
    )
    key = config.stripe_metadata_key or "aispendtrack_customer_id"
    customer_ids = {}
    for customer in client.v1.customers.list(params={"limit": 100}).auto_paging_iter():
        data = customer.to_dict()
        mapped = (data.get("metadata") or {}).get(key)
        customer_ids[customer["id"]] = str(mapped).strip() if mapped else customer["id"]
    rows: list[Any] = []
    result = StripeSync()
    # Every invoice, keeping the paid ones here: Stripe could filter by status,
    # but localstripe (the tests' server) cannot, and drafts are few.
    invoices = client.v1.invoices.list(params={"limit": 100})
    for invoice in invoices.auto_paging_iter():
        data = invoice.to_dict()
        if data.get("status") != "paid":
            continue
        result.invoices += 1
        try:
            rows.append(invoice_row(data, customer_ids))
        except ValueError as error:
            result.rejected.append(Rejection(result.invoices - 1, data["id"], str(error)))
    imported = revenue_import(organization=organization, source=RevenueSource.STRIPE, rows=rows)
    result.created, result.updated = imported.created, imported.updated
    result.rejected += imported.rejected
    return result


@dataclass
class Unmapped:
    customer_id: str
    amount: Decimal
    entries: int


def stripe_unmapped_revenue(*, organization: Organization) -> list[Unmapped]:
    """Stripe revenue whose customer id matches no customer in the ledger (ever):
    most likely a Stripe customer without the metadata key."""
    sums: dict[str, Unmapped] = {}
    for customer_id, amount in RevenueEntry.objects.filter(
        organization=organization, source=RevenueSource.STRIPE
    ).values_list("customer_id", "amount"):
        row = sums.setdefault(customer_id, Unmapped(customer_id, Decimal(0), 0))
        row.amount += amount
        row.entries += 1
    if not sums:
        return []
    known = set(
        HourlyRollup.objects.filter(organization=organization, customer_id__in=list(sums))
        .values_list("customer_id", flat=True)
        .distinct()
    )
    return sorted((row for cid, row in sums.items() if cid not in known), key=lambda r: -r.amount)


def stripe_revenue_sync_all() -> int:
    """Every connected organization (the daily beat task); returns how many synced."""
    done = 0
    for organization_id in RevenueSettings.objects.exclude(stripe_key_encrypted="").values_list(
        "organization_id", flat=True
    ):
        try:
            stripe_revenue_sync(organization=Organization.objects.get(pk=organization_id))
            done += 1
        except Exception:  # one tenant's broken key never stops the others
            logger.exception("Stripe revenue sync of organization %s failed", organization_id)
    return done
