"""Refused calls are counted per organization, hour and reason, never as ledger events."""

from __future__ import annotations

from datetime import UTC, datetime

import openai
import pytest

from analytics.models import RefusalRollup, UsageEvent
from proxy.gates import Refusal

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class RefuseAll:
    """A gate that refuses every call of one organization."""

    def __init__(self, organization_id: int, reason: str) -> None:
        self.organization_id, self.reason = organization_id, reason

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def admit(self, call):
        if call.identity.organization_id != self.organization_id:
            return None
        return Refusal(
            code="plan_limit_exceeded",
            message="closed",
            retry_after=60,
            should_retry=False,
            reason=self.reason,
        )

    def observe(self, record) -> None: ...


@pytest.fixture
def refusing_gate(proxy, api_key):
    gate = RefuseAll(api_key.row.organization_id, "plan")
    proxy.runtime.gates.append(gate)
    yield gate
    proxy.runtime.gates.remove(gate)


def test_refusals_are_counted_per_hour_and_reason(proxy, api_key, refusing_gate, fake_provider):
    client = openai.OpenAI(
        base_url=f"{proxy.url}/v1",
        api_key="sk-test",
        default_headers={"x-aispendtrack-key": api_key.raw},
    )
    for _ in range(3):
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o-mini", messages=[])
    proxy.call(proxy.runtime.refusals.flush_now())  # (or the 5-second flush did it already)

    # The SDK's default two retries did not happen (x-should-retry: false): 3 calls, 3 refusals.
    assert fake_provider.received == []
    [row] = RefusalRollup.objects.all()
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    assert (row.organization_id, row.reason, row.count) == (api_key.row.organization_id, "plan", 3)
    assert row.hour == hour or (hour - row.hour).total_seconds() == 3600  # an hour just turned
    assert not UsageEvent.objects.exists()

    # A second flush adds to the same row.
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    proxy.call(proxy.runtime.refusals.flush_now())
    assert sum(RefusalRollup.objects.values_list("count", flat=True)) == 4
