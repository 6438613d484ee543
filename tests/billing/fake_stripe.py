"""A small fake of Stripe's API, served on loopback, reached via STRIPE_API_BASE.

It speaks Stripe's wire format (form-encoded requests with bracketed keys,
JSON objects with `object` and `id`, error bodies `{"error": {...}}`) for what
AiSpendTrack uses: customers, prices, Checkout Sessions, Billing Portal
sessions, subscription retrieve and cancel. Every request is recorded.

The hosted pages are faked too: GET /checkout/<id> shows a "Pay" button;
paying creates the subscription, delivers `checkout.session.completed` and
`customer.subscription.created` to `webhook_url` signed with `webhook_secret`
exactly as Stripe signs them, and redirects to the session's success_url.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

PRICE_PRO = "price_pro_monthly"
_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_fake{next(_ids):06d}"


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header: t=<unix>,v1=HMAC-SHA256(secret, "<t>.<payload>")."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(event_type: str, obj: dict, *, created: int | None = None) -> dict:
    return {
        "id": new_id("evt"),
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()) if created is None else created,
        "type": event_type,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": obj},
    }


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeStripe:
    webhook_url: str = ""
    webhook_secret: str = ""
    requests: list[Request] = field(default_factory=list)
    customers: dict[str, dict] = field(default_factory=dict)
    prices: dict[str, dict] = field(default_factory=dict)
    sessions: dict[str, dict] = field(default_factory=dict)
    subscriptions: dict[str, dict] = field(default_factory=dict)
    invoices: dict[str, dict] = field(default_factory=dict)
    # Set to make the API answer 500 (a Stripe outage).
    failing: bool = False
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self.prices[PRICE_PRO] = {
            "id": PRICE_PRO,
            "object": "price",
            "active": True,
            "currency": "usd",
            "unit_amount": 14900,
            "recurring": {"interval": "month", "interval_count": 1},
            "product": "prod_fake_pro",
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeStripe:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                fake._handle(self, "GET")

            def do_POST(self):
                fake._handle(self, "POST")

            def do_DELETE(self):
                fake._handle(self, "DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def asked(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # --- state changes a test (or the fake checkout page) makes ------------------

    def subscription_create(
        self, *, customer: str, price: str, metadata: dict, trial_days: int = 0
    ) -> dict:
        now = int(time.time())
        period_end = now + (trial_days * 86400 if trial_days else 30 * 86400)
        subscription: dict[str, Any] = {
            "id": new_id("sub"),
            "object": "subscription",
            "customer": customer,
            "status": "trialing" if trial_days else "active",
            "cancel_at_period_end": False,
            "created": now,
            "trial_end": period_end if trial_days else None,
            "metadata": metadata,
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": new_id("si"),
                        "object": "subscription_item",
                        "price": self.prices[price],
                        "quantity": 1,
                        "current_period_start": now,
                        "current_period_end": period_end,
                    }
                ],
            },
        }
        self.subscriptions[subscription["id"]] = subscription
        return subscription

    def customer_add(self, *, metadata: dict | None = None, email: str = "") -> dict:
        customer_id = new_id("cus")
        customer: dict[str, Any] = {
            "id": customer_id,
            "object": "customer",
            "email": email,
            "metadata": metadata or {},
        }
        self.customers[customer_id] = customer
        return customer

    def invoice_add(
        self,
        *,
        customer: str,
        amount_paid: int,
        period_start: int,
        period_end: int,
        status: str = "paid",
        currency: str = "usd",
    ) -> dict:
        """An invoice of one subscription line for [period_start, period_end) (unix)."""
        invoice_id = new_id("in")
        invoice: dict[str, Any] = {
            "id": invoice_id,
            "object": "invoice",
            "customer": customer,
            "status": status,
            "currency": currency,
            "amount_paid": amount_paid if status == "paid" else 0,
            "created": period_start,
            "period_start": period_start,
            "period_end": period_start,  # as Stripe: the previous usage period
            "lines": {
                "object": "list",
                "data": [
                    {
                        "id": new_id("il"),
                        "object": "line_item",
                        "amount": amount_paid,
                        "period": {"start": period_start, "end": period_end},
                    }
                ],
                "has_more": False,
            },
        }
        self.invoices[invoice_id] = invoice
        return invoice

    def subscription_update(self, subscription_id: str, **fields) -> dict:
        subscription = self.subscriptions[subscription_id]
        period_end = fields.pop("current_period_end", None)
        if period_end is not None:
            for item in subscription["items"]["data"]:
                item["current_period_end"] = period_end
        subscription.update(fields)
        return json.loads(json.dumps(subscription))

    def checkout_complete(self, session_id: str) -> tuple[dict, dict]:
        """The customer paid: the session completes and the subscription exists."""
        session = self.sessions[session_id]
        subscription = self.subscription_create(
            customer=session["customer"],
            price=session["_price"],
            metadata=session["_subscription_metadata"],
            trial_days=session["_trial_days"],
        )
        session.update({"status": "complete", "subscription": subscription["id"]})
        public = {k: v for k, v in session.items() if not k.startswith("_")}
        return public, json.loads(json.dumps(subscription))

    def deliver(self, event_type: str, obj: dict) -> int:
        """POST a signed event to webhook_url, as Stripe does; its status."""
        payload = json.dumps(event(event_type, obj)).encode()
        request = urllib.request.Request(  # noqa: S310 (loopback test server)
            self.webhook_url,
            data=payload,
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": sign(payload, self.webhook_secret),
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status

    # --- the HTTP side -----------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        path, _, query = handler.path.partition("?")
        params = dict(parse_qsl(body or query, keep_blank_values=True))
        self.requests.append(Request(method, path, params, dict(handler.headers.items())))
        if path.startswith("/checkout/"):
            return self._checkout_page(handler, method, path.rsplit("/", 1)[1])
        if self.failing:
            return self._send(handler, 500, _error("api_error", "fake outage"))
        # Secret keys, and restricted keys (the revenue sync's read-only key).
        if not handler.headers.get("Authorization", "").startswith(("Bearer sk_", "Bearer rk_")):
            return self._send(handler, 401, _error("invalid_request_error", "No API key"))
        status, payload = self._route(method, path, params)
        self._send(handler, status, payload)

    def _route(self, method: str, path: str, params: dict[str, str]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if method == "POST" and path == "/v1/customers":
            customer: dict[str, Any] = {
                "id": new_id("cus"),
                "object": "customer",
                "email": params.get("email"),
                "name": params.get("name"),
                "metadata": _nested(params, "metadata"),
            }
            self.customers[customer["id"]] = customer
            return 200, customer
        if method == "GET" and path == "/v1/customers":
            return 200, _page(list(self.customers.values()), params, path)
        if method == "GET" and path == "/v1/invoices":
            invoices = [
                i
                for i in self.invoices.values()
                if params.get("status") in (None, i["status"])
                and params.get("customer") in (None, i["customer"])
            ]
            return 200, _page(invoices, params, path)
        if method == "GET" and parts[:2] == ["v1", "customers"] and len(parts) == 3:
            return self._found(self.customers.get(parts[2]), "customer")
        if method == "GET" and parts[:2] == ["v1", "prices"] and len(parts) == 3:
            return self._found(self.prices.get(parts[2]), "price")
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._session_create(params)
        if method == "POST" and path == "/v1/billing_portal/sessions":
            if params.get("customer") not in self.customers:
                return 400, _error("invalid_request_error", "No such customer")
            session_id = new_id("bps")
            return 200, {
                "id": session_id,
                "object": "billing_portal.session",
                "customer": params["customer"],
                "return_url": params.get("return_url"),
                "url": f"{self.url}/portal/{session_id}",
            }
        if parts[:2] == ["v1", "subscriptions"] and len(parts) == 3:
            subscription = self.subscriptions.get(parts[2])
            if method == "DELETE" and subscription is not None:
                subscription.update({"status": "canceled", "canceled_at": int(time.time())})
            return self._found(subscription, "subscription")
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({method} {path})")

    def _session_create(self, params: dict[str, str]) -> tuple[int, Any]:
        if params.get("mode") != "subscription":
            return 400, _error("invalid_request_error", "mode must be subscription here")
        price = params.get("line_items[0][price]", "")
        if price not in self.prices:
            return 400, _error("invalid_request_error", f"No such price: '{price}'")
        if params.get("customer") not in self.customers:
            return 400, _error("invalid_request_error", "No such customer")
        session_id = new_id("cs")
        trial = params.get("subscription_data[trial_period_days]")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "subscription",
            "status": "open",
            "customer": params["customer"],
            "client_reference_id": params.get("client_reference_id"),
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "subscription": None,
            "url": f"{self.url}/checkout/{session_id}",
            "_price": price,
            "_trial_days": int(trial) if trial else 0,
            "_subscription_metadata": _nested(params, "subscription_data[metadata]"),
        }
        self.sessions[session_id] = session
        return 200, {k: v for k, v in session.items() if not k.startswith("_")}

    def _checkout_page(self, handler, method: str, session_id: str) -> None:
        session = self.sessions.get(session_id)
        if session is None:
            return self._send(handler, 404, _error("invalid_request_error", "No such session"))
        if method == "GET":
            page = (
                "<!doctype html><title>Fake Stripe Checkout</title><link rel=icon href='data:,'>"
                "<h1>Subscribe to Pro</h1>"
                f'<form method="post" action="/checkout/{session_id}">'
                '<button type="submit" id="pay">Pay</button></form>'
            ).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "text/html")
            handler.send_header("Content-Length", str(len(page)))
            handler.end_headers()
            handler.wfile.write(page)
            return None
        public, subscription = self.checkout_complete(session_id)
        self.deliver("checkout.session.completed", public)
        self.deliver("customer.subscription.created", subscription)
        handler.send_response(303)
        handler.send_header("Location", session["success_url"])
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return None

    @staticmethod
    def _found(obj: dict | None, kind: str) -> tuple[int, Any]:
        if obj is None:
            return 404, _error("invalid_request_error", f"No such {kind}", code="resource_missing")
        return 200, obj

    @staticmethod
    def _send(handler, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Request-Id", new_id("req"))
        handler.end_headers()
        handler.wfile.write(body)


def _page(objects: list[dict], params: dict[str, str], url: str) -> dict:
    """A Stripe list page: `limit` objects after `starting_after` (creation order)."""
    limit = int(params.get("limit") or 10)
    after = params.get("starting_after")
    if after:
        ids = [o["id"] for o in objects]
        objects = objects[ids.index(after) + 1 :] if after in ids else []
    return {
        "object": "list",
        "data": objects[:limit],
        "has_more": len(objects) > limit,
        "url": url,
    }


def _error(kind: str, message: str, code: str | None = None) -> dict:
    return {"error": {"type": kind, "message": message, "code": code}}


def _nested(params: dict[str, str], prefix: str) -> dict[str, str]:
    """`metadata[organization_id]=7` → {"organization_id": "7"} for `prefix`."""
    start = prefix + "["
    return {
        key[len(start) : -1]: value
        for key, value in params.items()
        if key.startswith(start) and key.endswith("]") and "[" not in key[len(start) : -1]
    }
