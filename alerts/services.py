"""Writes for budgets and alert channels. Every service takes the organization
first; validation errors are `django.core.exceptions.ValidationError` with a
message per field, for forms and the REST API alike."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from accounts.models import ApiKey, Organization
from alerts.models import (
    AMOUNT_PLACES,
    AlertChannel,
    Budget,
    BudgetAction,
    BudgetPeriod,
    BudgetScope,
    ChannelKind,
)
from config.netguard import UnsafeURL, check_public_url

BUDGET_FIELDS = (
    "name",
    "scope",
    "scope_value",
    "period",
    "amount",
    "thresholds",
    "action",
    "channels",
    "is_active",
)
CHANNEL_FIELDS = ("name", "kind", "target", "is_active", "is_default")
MAX_EMAILS = 20
MAX_AMOUNT = Decimal("1e9")


def _allow_private() -> bool:
    return bool(settings.AISPENDTRACK_WEBHOOK_ALLOW_PRIVATE)


# --- validation -------------------------------------------------------------------


def _clean_amount(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationError("Enter the amount in USD, e.g. 100 or 12.50.") from None
    if not amount.is_finite() or amount <= 0 or amount >= MAX_AMOUNT:
        raise ValidationError("The amount must be more than 0 and under 1,000,000,000 USD.")
    if amount != amount.quantize(Decimal(1).scaleb(-AMOUNT_PLACES)):
        raise ValidationError(f"The amount has more than {AMOUNT_PLACES} decimal places.")
    return amount


def _clean_thresholds(value: Any) -> list[int]:
    if not isinstance(value, list | tuple) or not value or len(value) > 10:
        raise ValidationError("Give 1 to 10 percentages, e.g. [50, 75, 90, 100].")
    out = set()
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise ValidationError("Each threshold is a whole percentage between 1 and 1000.")
        try:
            number = int(item)
        except ValueError:
            raise ValidationError(
                "Each threshold is a whole percentage between 1 and 1000."
            ) from None
        if not 1 <= number <= 1000:
            raise ValidationError("Each threshold is a whole percentage between 1 and 1000.")
        out.add(number)
    return sorted(out)


def _clean_scope_value(organization: Organization, scope: str, value: Any) -> str:
    text = str(value or "").strip()
    if scope == BudgetScope.ORGANIZATION:
        if text:
            raise ValidationError("An organization budget has no scope value; leave it empty.")
        return ""
    if not text:
        raise ValidationError(f"Name the {BudgetScope(scope).label.lower()} this budget covers.")
    if len(text) > 256:
        raise ValidationError("The scope value is at most 256 characters.")
    if scope == BudgetScope.API_KEY and (
        not text.isdigit()
        or not ApiKey.objects.filter(organization=organization, pk=int(text)).exists()
    ):
        raise ValidationError("Pick one of this organization's API keys (its id).")
    return text


def _choice(value: Any, choices, label: str) -> str:
    if value not in choices.values:
        raise ValidationError(f"{label} must be one of: {', '.join(choices.values)}.")
    return str(value)


def budget_clean(
    *, organization: Organization, data: dict[str, Any], instance: Budget | None = None
) -> dict[str, Any]:
    """Validated budget fields from `data` (a partial update when `instance`).
    Raises ValidationError({field: message})."""
    current: dict[str, Any] = {}
    if instance is not None:
        current = {name: getattr(instance, name) for name in BUDGET_FIELDS if name != "channels"}
        current["channels"] = list(instance.channels.all())
    merged = {**current, **data}
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}

    def check(name: str, function) -> None:
        try:
            clean[name] = function()
        except ValidationError as error:
            errors[name] = error.messages[0]

    check("name", lambda: _clean_name(merged.get("name")))
    check("scope", lambda: _choice(merged.get("scope"), BudgetScope, "scope"))
    check("period", lambda: _choice(merged.get("period"), BudgetPeriod, "period"))
    check("action", lambda: _choice(merged.get("action"), BudgetAction, "action"))
    check("amount", lambda: _clean_amount(merged.get("amount")))
    check("thresholds", lambda: _clean_thresholds(merged.get("thresholds", [50, 75, 90, 100])))
    check("is_active", lambda: _clean_bool(merged.get("is_active", True)))
    check("channels", lambda: _clean_channels(organization, merged.get("channels") or []))
    if "scope" in clean:
        check(
            "scope_value",
            lambda: _clean_scope_value(organization, clean["scope"], merged.get("scope_value")),
        )
    if errors:
        raise ValidationError(errors)
    return clean


def _clean_name(value: Any) -> str:
    text = str(value or "").strip()
    if not text or len(text) > 100:
        raise ValidationError("Give the budget a name of 1 to 100 characters.")
    return text


def _clean_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValidationError("Must be true or false.")


def _clean_channels(organization: Organization, value: Any) -> list[AlertChannel]:
    if not isinstance(value, list | tuple):
        raise ValidationError("Give a list of alert channel ids.")
    out = []
    for item in value:
        if isinstance(item, AlertChannel):
            item = item.pk
        if isinstance(item, bool) or not str(item).isdigit():
            raise ValidationError("Give a list of alert channel ids.")
        channel = AlertChannel.objects.filter(organization=organization, pk=int(item)).first()
        if channel is None:  # same message for "missing" and "another org's"
            raise ValidationError(f"No alert channel with id {item}.")
        out.append(channel)
    return out


def channel_target_clean(kind: str, target: Any) -> str:
    """A channel's target, checked: email addresses, or a URL that resolves
    only to public addresses (unless AISPENDTRACK_WEBHOOK_ALLOW_PRIVATE)."""
    text = str(target or "").strip()
    if kind == ChannelKind.EMAIL:
        addresses = [part.strip() for part in text.split(",") if part.strip()]
        if not addresses or len(addresses) > MAX_EMAILS:
            raise ValidationError(f"Give 1 to {MAX_EMAILS} email addresses, comma-separated.")
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                raise ValidationError(f"{address!r} is not an email address.") from None
        return ", ".join(addresses)
    if len(text) > 2000:
        raise ValidationError("The URL is at most 2000 characters.")
    schemes = ("https", "http") if _allow_private() else ("https",)
    try:
        check_public_url(text, allow_private=_allow_private(), schemes=schemes)
    except UnsafeURL as error:
        raise ValidationError(str(error)) from None
    return text


def channel_clean(*, data: dict[str, Any], instance: AlertChannel | None = None) -> dict[str, Any]:
    current = {name: getattr(instance, name) for name in CHANNEL_FIELDS} if instance else {}
    merged = {**current, **data}
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    name = str(merged.get("name") or "").strip()
    if not name or len(name) > 100:
        errors["name"] = "Give the channel a name of 1 to 100 characters."
    clean["name"] = name
    kind = merged.get("kind")
    if kind not in ChannelKind.values:
        errors["kind"] = f"kind must be one of: {', '.join(ChannelKind.values)}."
    elif instance is not None and kind != instance.kind:
        errors["kind"] = "A channel's kind cannot change; create a new channel."
    else:
        clean["kind"] = kind
        try:
            clean["target"] = channel_target_clean(kind, merged.get("target"))
        except ValidationError as error:
            errors["target"] = error.messages[0]
    for flag in ("is_active", "is_default"):
        value = merged.get(flag, True)
        if not isinstance(value, bool):
            errors[flag] = "Must be true or false."
        clean[flag] = value
    if errors:
        raise ValidationError(errors)
    return clean


# --- writes -------------------------------------------------------------------------


@transaction.atomic
def budget_create(*, organization: Organization, created_by, data: dict[str, Any]) -> Budget:
    clean = budget_clean(organization=organization, data=data)
    channels = clean.pop("channels")
    budget = Budget.objects.create(organization=organization, created_by=created_by, **clean)
    budget.channels.set(channels)
    return budget


@transaction.atomic
def budget_update(*, organization: Organization, budget: Budget, data: dict[str, Any]) -> Budget:
    if budget.organization_id != organization.pk:
        raise ValueError("budget of another organization")
    clean = budget_clean(organization=organization, data=data, instance=budget)
    channels = clean.pop("channels")
    for name, value in clean.items():
        setattr(budget, name, value)
    budget.save()
    budget.channels.set(channels)
    return budget


def budget_delete(*, organization: Organization, budget: Budget) -> None:
    if budget.organization_id != organization.pk:
        raise ValueError("budget of another organization")
    budget.delete()


def webhook_secret_new() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def alert_channel_create(*, organization: Organization, data: dict[str, Any]) -> AlertChannel:
    """A new channel; a webhook gets a fresh signing secret (returned once by the API)."""
    clean = channel_clean(data=data)
    secret = webhook_secret_new() if clean["kind"] == ChannelKind.WEBHOOK else ""
    return AlertChannel.objects.create(organization=organization, secret=secret, **clean)


def alert_channel_update(
    *, organization: Organization, channel: AlertChannel, data: dict[str, Any]
) -> AlertChannel:
    if channel.organization_id != organization.pk:
        raise ValueError("channel of another organization")
    for name, value in channel_clean(data=data, instance=channel).items():
        setattr(channel, name, value)
    channel.save()
    return channel


def alert_channel_delete(*, organization: Organization, channel: AlertChannel) -> None:
    if channel.organization_id != organization.pk:
        raise ValueError("channel of another organization")
    channel.delete()


def channels_of(budget: Budget) -> Iterable[AlertChannel]:
    return [channel for channel in budget.channels.all() if channel.is_active]
