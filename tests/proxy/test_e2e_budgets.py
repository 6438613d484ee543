"""Hard-cap budgets end to end: the real OpenAI and Anthropic SDKs against the
proxy, which refuses calls once a block budget is spent.

Each priced call below costs exactly $0.01 by hand: the fake provider reports
57 input tokens (12 of them cached) and 23 output tokens, priced at $2 / $822 /
$2 per million (45×2 + 12×822 + 23×2 = 10,000 millionths of a dollar).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest
from django.db.models import Sum

from alerts.models import Budget
from analytics.models import RefusalRollup, UsageEvent
from pricing import engine
from pricing.models import ModelPrice, Provider
from proxy.budgets import BudgetGate

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CENT = Decimal("0.01")
MODEL = "budget-test-model"


@pytest.fixture
def cent_per_call(builtin_providers):
    ModelPrice.objects.create(
        provider=Provider.objects.get(slug="openai"),
        model_id=MODEL,
        input=Decimal("2"),
        cache_read=Decimal("822"),
        output=Decimal("2"),
    )
    engine.ensure_fresh(force=True)
    yield
    engine.snapshot_reset()


def gate_of(proxy) -> BudgetGate:
    return next(g for g in proxy.runtime.gates if isinstance(g, BudgetGate))


def budgets_loaded(proxy) -> None:
    """What the gate does within AISPENDTRACK_BUDGET_RELOAD_SECONDS, now."""
    gate = gate_of(proxy)
    proxy.call(gate.reload())
    proxy.call(gate.reconcile(only_new=True))


def block_budget(org, **fields) -> Budget:
    values = {
        "name": "Hard cap",
        "scope": "organization",
        "period": "month",
        "amount": CENT,
        "action": "block",
    }
    values.update(fields)
    return Budget.objects.create(organization=org, **values)


def openai_client(proxy, api_key, **headers) -> openai.OpenAI:
    # The SDK's default retries (2) stay on: x-should-retry: false must stop them.
    return openai.OpenAI(
        base_url=f"{proxy.url}/v1",
        api_key="sk-test",
        default_headers={"x-aispendtrack-key": api_key.raw, **headers},
    )


def test_openai_and_anthropic_sdks_get_one_refusal_per_call(
    proxy, api_key, org, cent_per_call, fake_provider
):
    budget = block_budget(org)
    budgets_loaded(proxy)
    client = openai_client(proxy, api_key)
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=[])
    assert Decimal(raw.headers["x-aispendtrack-cost"]) == CENT  # the hand computation holds
    proxy.call(proxy.runtime.refusals.flush_now())
    forwarded = len(fake_provider.received)

    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=MODEL, messages=[])
    response = refused.value.response
    assert response.status_code == 429
    assert response.headers["x-should-retry"] == "false"
    error = response.json()["error"]
    assert error["code"] == error["type"] == "budget_exceeded"
    assert '"Hard cap"' in error["message"] and "resets at" in error["message"]
    seconds_left = int(response.headers["retry-after"])
    assert 0 < seconds_left <= 31 * 86400

    ant = anthropic.Anthropic(
        base_url=proxy.url, api_key="sk-ant", default_headers={"x-aispendtrack-key": api_key.raw}
    )
    with pytest.raises(anthropic.RateLimitError) as refused_ant:
        ant.messages.create(model="claude-x", max_tokens=5, messages=[])
    body = refused_ant.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "budget_exceeded"
    assert refused_ant.value.response.headers["x-should-retry"] == "false"

    # Two refused calls, two requests: neither SDK retried, nothing was forwarded.
    proxy.call(proxy.runtime.refusals.flush_now())
    assert len(fake_provider.received) == forwarded
    [row] = RefusalRollup.objects.filter(organization=org)
    assert (row.reason, row.count) == ("budget", 2)
    assert len(proxy.events(1, organization=org)) == 1

    # Pausing the budget opens the cap at the next reload.
    budget.is_active = False
    budget.save()
    budgets_loaded(proxy)
    client.chat.completions.create(model=MODEL, messages=[])


def test_cap_holds_under_concurrency_and_other_customers_pass(proxy, api_key, org, cent_per_call):
    """400 calls at concurrency 16, $0.01 each, against $1.00 on customer "big";
    customer "small" sends 60 calls alongside, all of which must pass."""
    block_budget(org, name="Big's cap", scope="customer", scope_value="big", amount=Decimal("1"))
    budgets_loaded(proxy)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}

    async def run() -> tuple[list[int], list[int]]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=proxy.url, limits=limits, timeout=30) as http:

            async def send(customer: str, gate: asyncio.Semaphore) -> int:
                async with gate:
                    response = await http.post(
                        "/v1/chat/completions",
                        json=body,
                        headers={
                            "x-aispendtrack-key": api_key.raw,
                            "authorization": "Bearer sk-test",
                            "x-customer-id": customer,
                        },
                    )
                    return response.status_code

            big_gate, small_gate = asyncio.Semaphore(16), asyncio.Semaphore(4)
            big = [send("big", big_gate) for _ in range(400)]
            small = [send("small", small_gate) for _ in range(60)]
            results = await asyncio.gather(*big, *small)
            return list(results[:400]), list(results[400:])

    big, small = asyncio.run(run())
    assert set(big) <= {200, 429} and small == [200] * 60
    events = proxy.events(big.count(200) + 60, organization=org)
    assert len(events) == big.count(200) + 60
    admitted = UsageEvent.objects.filter(organization=org, customer_id="big").aggregate(
        total=Sum("cost")
    )["total"]
    # Reached the cap, and overshot by at most the 16 calls in flight.
    assert Decimal("1.00") <= admitted <= Decimal("1.00") + 16 * CENT
    assert big.count(200) == UsageEvent.objects.filter(customer_id="big").count()
    assert big.count(429) == 400 - big.count(200) >= 400 - 116
