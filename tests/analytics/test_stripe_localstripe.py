"""Revenue from Stripe against localstripe (issue 13): a stateful fake Stripe
server whose customers, plans and subscriptions produce the paid invoices the
daily sync imports, through the official `stripe` client as in production."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
import stripe
from django.test import override_settings

from analytics.models import RevenueEntry, RevenueSource
from analytics.stripe_revenue import (
    stripe_revenue_connect,
    stripe_revenue_sync,
    stripe_unmapped_revenue,
)
from tests.analytics.conftest import call

KEY = "sk_test_localstripe_margin"  # localstripe takes any sk_ key


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def localstripe():
    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
        [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # up when it answers (a start-up on a loaded box, not a timing test)
            try:
                httpx.delete(f"{url}/_config/data", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "no localstripe"
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def account(localstripe):
    """A clean localstripe account and a client to fill it."""
    httpx.delete(f"{localstripe}/_config/data", timeout=10).raise_for_status()
    with override_settings(STRIPE_API_BASE=localstripe):
        yield stripe.StripeClient(KEY, base_addresses={"api": localstripe})


def subscribe(client, *, cents: int, currency: str = "usd", metadata=None) -> dict:
    """A customer paying a monthly plan by card: localstripe bills the first
    month at once (a paid invoice). Returns that invoice."""
    card = {"number": "4242424242424242", "exp_month": "12", "exp_year": "2030", "cvc": "123"}
    token = client.v1.tokens.create(params={"card": card})
    customer = client.v1.customers.create(
        params={"email": "billing@example.com", "source": token["id"], "metadata": metadata or {}}
    )
    product = client.v1.products.create(params={"name": "Pro"})
    plan = client.v1.plans.create(
        params={
            "product": product["id"],
            "amount": cents,
            "currency": currency,
            "interval": "month",
        }
    )
    subscription = client.v1.subscriptions.create(
        params={"customer": customer["id"], "items": [{"plan": plan["id"]}]}
    )
    invoice = client.v1.invoices.retrieve(subscription["latest_invoice"]).to_dict()
    assert invoice["status"] == "paid"
    return invoice


def _day(timestamp: int):
    return datetime.fromtimestamp(timestamp, tz=UTC).date()


def test_localstripe_invoices_become_revenue_once(org, other_org, ingest, account):
    ingest(call(org, datetime.now(UTC), cost="1.00", customer_id="acme"))
    mapped = subscribe(account, cents=4900, metadata={"aispendtrack_customer_id": "acme"})
    plain = subscribe(account, cents=1250)
    euros = subscribe(account, cents=900, currency="eur")
    stripe_revenue_connect(organization=org, key=KEY, metadata_key="")

    first = stripe_revenue_sync(organization=org)
    assert (first.invoices, first.created, first.updated) == (3, 2, 0)
    assert [(r.external_id, r.reason) for r in first.rejected] == [
        (euros["id"], "currency EUR: only USD revenue is supported")
    ]
    # By hand: $49.00 for acme over the invoice line's period ([start, end) in
    # seconds: the last day is the one before end), $12.50 for the unmapped one.
    period = mapped["lines"]["data"][0]["period"]
    acme = RevenueEntry.objects.get(organization=org, customer_id="acme")
    assert (acme.amount, acme.source, acme.external_id) == (
        Decimal("49"),
        RevenueSource.STRIPE,
        mapped["id"],
    )
    assert (acme.period_start, acme.period_end) == (
        _day(period["start"]),
        _day(period["end"] - 1),
    )
    (unmapped,) = stripe_unmapped_revenue(organization=org)
    assert (unmapped.customer_id, unmapped.amount) == (plain["customer"], Decimal("12.5"))

    again = stripe_revenue_sync(organization=org)  # the next day's sync: no double count
    assert (again.created, again.updated) == (0, 2)
    assert RevenueEntry.objects.filter(organization=org).count() == 2
    assert not RevenueEntry.objects.filter(organization=other_org).exists()
