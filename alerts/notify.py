"""Sending one alert to one channel: email, Slack, or a signed webhook.

Webhook and Slack URLs are checked again at send time: the host is resolved
once, every address must be public (unless AISPENDTRACK_WEBHOOK_ALLOW_PRIVATE),
and the request goes to exactly that address (a DNS answer that changes
between check and connect cannot reach an internal service). Redirects are
never followed: a 3xx is a failed delivery.

Webhook signature (documented in README): header
`AiSpendTrack-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import send_mail

from alerts.models import AlertChannel, AlertEvent, ChannelKind
from config.netguard import UnsafeURL, public_addresses, split_url

SIGNATURE_HEADER = "AiSpendTrack-Signature"
USER_AGENT = "AiSpendTrack-Webhooks/1"


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str = ""


def event_payload(event: AlertEvent) -> dict[str, Any]:
    """The webhook body: {id, type, created, organization, data}."""
    return {
        "id": str(event.uid),
        "type": event.kind,
        "created": int(event.fired_at.timestamp()),
        "organization": {"id": event.organization_id, "slug": event.organization.slug},
        "data": event.data,
    }


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def deliver(channel: AlertChannel, event: AlertEvent) -> Outcome:
    """Send `event` to `channel` once; never raises for a delivery failure."""
    try:
        if channel.kind == ChannelKind.EMAIL:
            return _email(channel, event)
        if channel.kind == ChannelKind.SLACK:
            body = json.dumps({"text": slack_text(event)}).encode()
            return _post(channel.target, body, {})
        body = json.dumps(event_payload(event), separators=(",", ":")).encode()
        headers = {SIGNATURE_HEADER: signature(channel.secret, int(time.time()), body)}
        return _post(channel.target, body, headers)
    except UnsafeURL as error:
        return Outcome(False, None, f"refused: {error}")


def _post(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    allow_private = bool(settings.AISPENDTRACK_WEBHOOK_ALLOW_PRIVATE)
    schemes = ("https", "http") if allow_private else ("https",)
    host, port = split_url(url, schemes=schemes)
    address = public_addresses(host, port, allow_private=allow_private)[0]
    parts = httpx.URL(url)
    literal = f"[{address}]" if address.version == 6 else str(address)
    pinned = parts.copy_with(host=literal)
    request_headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": parts.netloc.decode(),
        **headers,
    }
    try:
        with httpx.Client(
            timeout=float(settings.AISPENDTRACK_ALERT_TIMEOUT), follow_redirects=False
        ) as client:
            response = client.post(
                pinned,
                content=body,
                headers=request_headers,
                extensions={"sni_hostname": host},  # TLS checks the name, not the address
            )
    except httpx.HTTPError as error:
        return Outcome(False, None, f"{type(error).__name__}: {error}"[:500])
    if 200 <= response.status_code < 300:
        return Outcome(True, response.status_code)
    hint = " (redirects are not followed)" if 300 <= response.status_code < 400 else ""
    return Outcome(False, response.status_code, f"HTTP {response.status_code}{hint}")


def _email(channel: AlertChannel, event: AlertEvent) -> Outcome:
    addresses = [part.strip() for part in channel.target.split(",") if part.strip()]
    try:
        send_mail(
            email_subject(event),
            plain_text(event),
            None,
            addresses,
            fail_silently=False,
        )
    except Exception as error:  # SMTP errors come in many classes
        return Outcome(False, None, f"{type(error).__name__}: {error}"[:500])
    return Outcome(True)


# --- words for people -------------------------------------------------------------


def _usd(value: Any) -> str:
    return f"${Decimal(value):,.2f}"


def email_subject(event: AlertEvent) -> str:
    data = event.data
    if event.kind == AlertEvent.Kind.TEST:
        return "[AiSpendTrack] Test alert"
    if event.kind == AlertEvent.Kind.ANOMALY:
        return f"[AiSpendTrack] Unusual spend: {data.get('scope_label', 'organization')}"
    budget = data.get("budget", {})
    return (
        f'[AiSpendTrack] Budget "{budget.get("name")}" at {data.get("threshold")}% '
        f"({_usd(data.get('spend', 0))} of {_usd(budget.get('amount', 0))})"
    )


def plain_text(event: AlertEvent) -> str:
    data = event.data
    if event.kind == AlertEvent.Kind.TEST:
        return "This is a test alert from AiSpendTrack: this channel receives alerts."
    if event.kind == AlertEvent.Kind.ANOMALY:
        top = ", ".join(f"{k} {v}" for k, v in (data.get("top") or {}).items() if v)
        return (
            f"Spend today for {data.get('scope_label')} is {_usd(data.get('today', 0))}, "
            f"{data.get('ratio')}× the median of the previous 7 days "
            f"({_usd(data.get('baseline', 0))}). Biggest contributors: {top or 'n/a'}.\n"
            f"{data.get('url', '')}"
        )
    budget = data.get("budget", {})
    unpriced = data.get("unpriced_calls") or 0
    lines = [
        f'Budget "{budget.get("name")}" ({budget.get("period")}, {budget.get("scope_label")}) '
        f"has used {data.get('percent_used')}%: {_usd(data.get('spend', 0))} of "
        f"{_usd(budget.get('amount', 0))}, crossing the {data.get('threshold')}% threshold.",
        f"Period: {data.get('period_start')} to {data.get('period_end')}.",
    ]
    if unpriced:
        lines.append(f"{unpriced} calls had no price yet and are not in that sum.")
    if budget.get("action") == "block" and event.kind == AlertEvent.Kind.EXCEEDED:
        lines.append("This budget blocks calls: the proxy refuses its scope until it resets.")
    lines.append(data.get("url", ""))
    return "\n".join(lines)


def slack_text(event: AlertEvent) -> str:
    text = plain_text(event)
    url = event.data.get("url")
    if url:
        text = text.replace(url, f"<{url}|Open in AiSpendTrack>")
    return f"*{email_subject(event).removeprefix('[AiSpendTrack] ')}*\n{text}"
