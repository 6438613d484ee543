"""The usage buffer and its disk spool: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import os
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import OperationalError
from django.db.models import Sum

from analytics.models import HourlyRollup, Status, UsageEvent
from analytics.records import UsageRecord
from analytics.services import usage_record_batch
from pricing.usage import Usage
from proxy.buffer import UsageBuffer
from proxy.spool import Spool


def record(org_id: int, n: int) -> UsageRecord:
    return UsageRecord(
        request_id=f"req_{n:024x}",
        organization_id=org_id,
        api_key_id=None,
        created_at=datetime(2026, 11, 2, 10, n % 60, tzinfo=UTC),
        provider="openai",
        endpoint="/v1/chat/completions",
        status=Status.SUCCESS,
        model="gpt-4o",
        usage=Usage(input_tokens=10 + n, output_tokens=n),
        cost=Decimal("0.0000010000") * n,
        properties={"n": str(n)},
    )


class FlakyLedger:
    """usage_record_batch behind a switch: down raises like a dead database."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    def __call__(self, records):
        self.calls += 1
        if self.down:
            raise OperationalError("connection refused")
        return usage_record_batch(records)


def test_spool_round_trip_and_replay_is_idempotent(db, org, tmp_path):
    spool = Spool(tmp_path)
    records = [record(org.pk, n) for n in range(10)]
    spool.append(records[:6])
    spool.append(records[6:])
    assert [p.name for p in spool.pending()] == [spool.name]

    ledger = FlakyLedger()
    ledger.down = True
    with pytest.raises(OperationalError):
        spool.replay(ledger)
    assert len(spool.pending()) == 1  # put back for later, under a fresh name

    usage_record_batch(records[:3])  # some were written before the outage: no double count
    ledger.down = False
    assert spool.replay(ledger) == 10
    assert spool.pending() == []
    assert UsageEvent.objects.count() == 10
    rollup = HourlyRollup.objects.aggregate(calls=Sum("calls"), inp=Sum("input_tokens"))
    assert rollup == {"calls": 10, "inp": sum(r.usage.input_tokens for r in records)}
    assert UsageEvent.objects.get(request_id=records[4].request_id).properties == {"n": "4"}


def test_claimed_file_is_skipped_and_appends_go_to_a_fresh_file(db, org, tmp_path):
    mine, other = Spool(tmp_path), Spool(tmp_path)
    mine.append([record(org.pk, 1)])
    claimed = mine.path.with_name(mine.name + ".claimed-elsewhere-1")
    os.rename(mine.path, claimed)  # another process is replaying it
    assert other.replay(usage_record_batch) == 0
    mine.append([record(org.pk, 2)])  # must not write into the claimed file
    assert claimed.read_bytes().count(b"\n") == 1
    assert other.replay(usage_record_batch) == 1
    assert UsageEvent.objects.filter(request_id=record(org.pk, 2).request_id).exists()


def test_a_line_cut_by_a_crash_is_skipped(db, org, tmp_path):
    spool = Spool(tmp_path)
    spool.append([record(org.pk, 1)])
    with open(spool.path, "ab") as handle:
        handle.write(b'{"request_id": "req_cut')
    assert spool.replay(usage_record_batch) == 1


@pytest.mark.django_db(transaction=True)
def test_buffer_spools_while_down_and_replays_when_back(org, tmp_path):
    ledger = FlakyLedger()

    async def scenario() -> UsageBuffer:
        buffer = UsageBuffer(spool_dir=tmp_path, interval=0.02, max_events=5, write=ledger)
        buffer.start()
        for n in range(7):
            buffer.add(record(org.pk, n))
        await buffer.flush_now()
        ledger.down = True
        for n in range(7, 40):
            buffer.add(record(org.pk, n))
        for _ in range(100):  # several ticks fail and spool (bounded wait)
            await asyncio.sleep(0.02)
            if buffer.spooled == 33:
                break
        assert buffer.spool.pending()
        ledger.down = False
        for n in range(40, 45):
            buffer.add(record(org.pk, n))
        await buffer.stop()
        return buffer

    buffer = asyncio.run(scenario())
    assert buffer.spooled == 33 and buffer.replayed == 33
    assert buffer.spool.pending() == []
    assert UsageEvent.objects.count() == 45
    assert HourlyRollup.objects.aggregate(calls=Sum("calls"))["calls"] == 45


@pytest.mark.django_db(transaction=True)
def test_stop_spools_what_the_database_refuses(org, tmp_path):
    ledger = FlakyLedger()
    ledger.down = True

    async def scenario() -> None:
        buffer = UsageBuffer(spool_dir=tmp_path, interval=10, max_events=500, write=ledger)
        buffer.start()
        buffer.add(record(org.pk, 1))
        await buffer.stop()

    asyncio.run(scenario())
    assert UsageEvent.objects.count() == 0
    assert Spool(tmp_path).replay(usage_record_batch) == 1  # another process's restart
    assert UsageEvent.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_past_the_cap_records_go_to_the_spool_without_waiting(org, tmp_path):
    """The ledger thread hangs (a database that does not answer): memory stays
    under the cap, the loop never waits, and every record lands afterwards."""
    release = threading.Event()
    entered = threading.Event()

    def hung(records):
        entered.set()
        release.wait(30)
        return usage_record_batch(records)

    async def scenario() -> UsageBuffer:
        buffer = UsageBuffer(
            spool_dir=tmp_path, interval=0.01, max_events=10, max_pending=50, write=hung
        )
        buffer.start()
        buffer.add(record(org.pk, 0))
        await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
        loop = asyncio.get_running_loop()
        for n in range(1, 300):
            started = loop.time()
            buffer.add(record(org.pk, n))
            assert loop.time() - started < 0.05  # never waits on the spool or the ledger
            assert buffer.pending < 50
            await asyncio.sleep(0)
        for _ in range(500):  # the overflow thread spools (bounded wait)
            if buffer.spooled >= 250:
                break
            await asyncio.sleep(0.01)
        assert buffer.spooled >= 250 and buffer.spool.pending()
        release.set()
        await buffer.stop()
        return buffer

    asyncio.run(scenario())
    assert UsageEvent.objects.count() == 300
    assert HourlyRollup.objects.aggregate(calls=Sum("calls"))["calls"] == 300
