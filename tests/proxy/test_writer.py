"""The hand-off queue and the ledger writer: nothing lost, nothing counted twice.

In process: web workers' queues (proxy.handoff) and writers (proxy.writer)
side by side on one directory, the real ledger behind them. Killed processes
are in test_kill.py.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import OperationalError
from django.db.models import Sum

from analytics.models import HourlyRollup, Status, UsageEvent
from analytics.records import UsageRecord
from analytics.services import usage_record_batch
from pricing.usage import Usage
from proxy.handoff import HandoffQueue, record_line
from proxy.ledger import dead_letter_count
from proxy.spool import Spool
from proxy.writer import LedgerWriter, queue_backlog, writer_running

pytestmark = pytest.mark.django_db(transaction=True)


def record(org_id: int, n: int, **fields) -> UsageRecord:
    values: dict[str, Any] = {
        "request_id": f"req_{n:024x}",
        "organization_id": org_id,
        "api_key_id": None,
        "created_at": datetime(2026, 11, 2, 10, n % 60, tzinfo=UTC),
        "provider": "openai",
        "endpoint": "/v1/chat/completions",
        "status": Status.SUCCESS,
        "model": "gpt-4o",
        "usage": Usage(input_tokens=10 + n, output_tokens=n),
        "cost": Decimal("0.0000010000") * n,
        "properties": {"n": str(n)},
    }
    values.update(fields)
    return UsageRecord(**values)


class Ledger:
    """usage_record_batch behind a switch (down: raises like a dead database),
    remembering every request id it was given."""

    def __init__(self) -> None:
        self.down = False
        self.seen: list[str] = []

    def __call__(self, records):
        if self.down:
            raise OperationalError("connection refused")
        self.seen.extend(r.request_id for r in records)
        return usage_record_batch(records)


def writer_for(tmp_path, **kwargs) -> LedgerWriter:
    return LedgerWriter(queue_dir=tmp_path / "queue", spool_dir=tmp_path / "spool", **kwargs)


def queue_files(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "queue").iterdir() if p.name != "writer.lock")


def assert_ledger_holds(records: list[UsageRecord]) -> None:
    """Each record once, and the hourly rollup sums exactly those events."""
    ids = list(UsageEvent.objects.values_list("request_id", flat=True))
    assert sorted(ids) == sorted(r.request_id for r in records)
    rollup = HourlyRollup.objects.aggregate(calls=Sum("calls"), inp=Sum("input_tokens"))
    assert rollup == {"calls": len(records), "inp": sum(r.usage.input_tokens for r in records)}


def test_a_record_round_trips_through_the_queue(org, tmp_path):
    queue = HandoffQueue(tmp_path / "queue")
    original = record(org.pk, 7, customer_id="acme", cost=None)
    queue.append(original)
    assert queue.path is not None
    (line,) = queue.path.read_bytes().splitlines()
    assert UsageRecord.from_json(json.loads(line)) == original
    queue.close()


def test_a_line_is_the_record_as_json_reads_it():
    """The line's object, read by the stdlib, field by field (hand-written)."""
    r = record(1, 3, api_key_id=9, cost=Decimal("0.1234567891"), ttfb_ms=None)
    assert json.loads(record_line(r)) == {
        "request_id": "req_000000000000000000000003",
        "organization_id": 1,
        "api_key_id": 9,
        "created_at": "2026-11-02T10:03:00+00:00",
        "provider": "openai",
        "endpoint": "/v1/chat/completions",
        "status": "success",
        "model": "gpt-4o",
        "response_model": "",
        "customer_id": "",
        "feature": "",
        "trace_id": "",
        "environment": "",
        "properties": {"n": "3"},
        "usage": {
            "input_tokens": 13,
            "output_tokens": 3,
            "cached_input_tokens": 0,
            "cache_write_tokens": 0,
            "cache_write_1h_tokens": 0,
            "reasoning_tokens": 0,
            "input_audio_tokens": 0,
            "output_audio_tokens": 0,
        },
        "cost": "0.1234567891",
        "http_status": None,
        "latency_ms": 0,
        "ttfb_ms": None,
        "streamed": False,
        "upstream_request_id": "",
        "clamped": False,
        "sanitized": 0,  # built by hand, never sanitized: the writer sanitizes it
    }
    assert record_line(r).endswith(b"}\n") and record_line(r).count(b"\n") == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"cost": None, "created_at": datetime(2026, 3, 29, 1, 30, 0, 5, tzinfo=UTC)},
        {"properties": {"ünï": '✓ "quoted"\n'}, "customer_id": "naïve"},
        {"properties": {"odd": "\ud800"}},  # a lone surrogate: orjson refuses it
        {"properties": {7: "a key that is not text"}},  # orjson refuses it too
    ],
)
def test_every_line_reads_back_as_its_record(fields):
    r = record(1, 5, **fields)
    (line,) = record_line(r).splitlines()
    again = UsageRecord.from_json(json.loads(line))
    assert again.to_json() == UsageRecord.from_json(json.loads(json.dumps(r.to_json()))).to_json()
    assert (again.request_id, again.cost, again.created_at) == (r.request_id, r.cost, r.created_at)


def test_the_writer_writes_checkpoints_and_deletes_finished_files(org, tmp_path):
    queue = HandoffQueue(tmp_path / "queue")
    records = [record(org.pk, n) for n in range(30)]
    for r in records[:20]:
        queue.append(r)
    writer = writer_for(tmp_path, batch=7)
    assert writer.drain() == 20
    assert queue.path is not None
    offset = int((queue.path.parent / (queue.path.name + ".offset")).read_bytes())
    assert offset == queue.path.stat().st_size  # checkpoint at the end of what was written
    for r in records[20:]:
        queue.append(r)
    assert writer.drain() == 10
    # Its worker still appends: the file stays; once it lets go, it is deleted.
    assert queue_files(tmp_path) == [queue.path.name, queue.path.name + ".offset"]
    queue.close()
    assert writer.drain() == 0
    assert queue_files(tmp_path) == []
    assert_ledger_holds(records)
    writer.close()


def test_a_worker_rotates_and_the_writer_finishes_the_old_files(org, tmp_path):
    queue = HandoffQueue(tmp_path / "queue", file_bytes=2000)  # a few records a file
    records = [record(org.pk, n) for n in range(25)]
    for r in records:
        queue.append(r)
    writer = writer_for(tmp_path)
    assert writer.drain() == 25
    assert queue.path is not None
    assert queue_files(tmp_path) == [queue.path.name, queue.path.name + ".offset"]
    queue.close()
    writer.drain()
    assert queue_files(tmp_path) == []
    assert_ledger_holds(records)
    writer.close()


def test_a_busy_workers_file_does_not_starve_the_others(org, tmp_path):
    """Worker A's file gains records while each batch is written (steady load);
    worker B's records, waiting from the start, go in with A's first ones, not
    after A runs dry (the soak saw them wait 10-18 s), and a pass ends while
    A still gains records."""
    busy, quiet = HandoffQueue(tmp_path / "queue"), HandoffQueue(tmp_path / "queue")
    arrivals = [record(org.pk, n) for n in range(100, 300)]
    load = {"on": True, "next": 0}
    batches: list[set[str]] = []

    def ledger(records):
        batches.append({r.request_id for r in records})
        for _ in range(5):  # A's worker appends while the batch is written
            if load["on"] and load["next"] < len(arrivals):
                busy.append(arrivals[load["next"]])
                load["next"] += 1
        return usage_record_batch(records)

    early = [record(org.pk, n) for n in range(10)]  # A's file
    waiting = [record(org.pk, n) for n in range(10, 20)]  # B's file
    for r in early:
        busy.append(r)
    for r in waiting:
        quiet.append(r)
    writer = writer_for(tmp_path, batch=4, write=ledger)
    writer.step()
    load["on"] = False
    # B's 10 records need 3 batches of 4; taking turns, they are in the first 6.
    assert {r.request_id for r in waiting} <= set().union(*batches[:6])
    assert load["next"] < len(arrivals)  # the pass ended before A ran dry
    busy.close()
    quiet.close()
    writer.drain()
    writer.close()
    assert_ledger_holds(early + waiting + arrivals[: load["next"]])


def test_a_writer_killed_between_commit_and_checkpoint_doubles_nothing(org, tmp_path):
    """The batch is committed, then the writer dies before its checkpoint: the
    next writer reads that batch again and the ledger takes each record once."""
    queue = HandoffQueue(tmp_path / "queue")
    records = [record(org.pk, n) for n in range(12)]
    for r in records:
        queue.append(r)
    queue.close()

    class Killed(BaseException):
        """What SIGKILL does to the writer, in process: nothing after it runs."""

    def commit_then_die(batch):
        usage_record_batch(batch)
        raise Killed

    doomed = writer_for(tmp_path, batch=5, write=commit_then_die)
    with pytest.raises(Killed):
        doomed.step()
    doomed.close()  # the process is gone: its locks with it
    assert UsageEvent.objects.count() == 5

    ledger = Ledger()
    successor = writer_for(tmp_path, batch=5, write=ledger)
    successor.drain()
    assert ledger.seen[:5] == [r.request_id for r in records[:5]]  # re-read, not skipped
    assert_ledger_holds(records)
    assert queue_files(tmp_path) == []
    successor.close()


def test_the_backlog_is_counted_in_pieces_exactly(org, tmp_path, monkeypatch):
    # /healthz reads the queue a piece at a time (not the whole backlog at
    # once, which stepped the web workers' RSS up): lines that straddle
    # pieces are still counted once each.
    monkeypatch.setattr("proxy.writer.COUNT_CHUNK", 97)
    queue = HandoffQueue(tmp_path / "queue")
    records = [record(org.pk, n) for n in range(23)]
    for r in records:
        queue.append(r)
    backlog = queue_backlog(tmp_path / "queue")
    assert backlog["records"] == 23
    assert backlog["bytes"] == sum(len(record_line(r)) for r in records)
    queue.close()


def test_an_outage_leaves_the_queue_growing_and_loses_nothing(org, tmp_path, settings):
    settings.AISPENDTRACK_QUEUE_DIR = tmp_path / "queue"
    queue = HandoffQueue(tmp_path / "queue")
    ledger = Ledger()
    writer = writer_for(tmp_path, batch=4, write=ledger)
    records = [record(org.pk, n) for n in range(20)]
    for r in records[:6]:
        queue.append(r)
    writer.drain()
    ledger.down = True
    for r in records[6:]:
        queue.append(r)
    with pytest.raises(OperationalError):
        writer.step()
    backlog = queue_backlog(tmp_path / "queue")
    assert backlog["records"] == 14
    assert backlog["bytes"] == sum(len(record_line(r)) for r in records[6:])
    ledger.down = False
    writer.drain()
    assert queue_backlog(tmp_path / "queue")["records"] == 0
    assert_ledger_holds(records)
    queue.close()
    writer.close()


def test_two_writers_on_one_host_never_take_the_same_file(org, tmp_path):
    records = [record(org.pk, n) for n in range(200)]
    for start in range(0, 200, 50):  # four workers' files, all finished
        queue = HandoffQueue(tmp_path / "queue")
        for r in records[start : start + 50]:
            queue.append(r)
        queue.close()
    ledgers = [Ledger(), Ledger()]
    writers = [writer_for(tmp_path, batch=10, write=ledger) for ledger in ledgers]
    start = threading.Barrier(2)

    def run(writer: LedgerWriter) -> None:
        start.wait()
        writer.drain()

    threads = [threading.Thread(target=run, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    given = ledgers[0].seen + ledgers[1].seen
    assert sorted(given) == sorted(r.request_id for r in records)  # each read by one writer once
    assert_ledger_holds(records)
    assert queue_files(tmp_path) == []
    for writer in writers:
        writer.close()


def test_a_cut_last_line_of_a_dead_workers_file_is_skipped(org, tmp_path, caplog):
    queue = HandoffQueue(tmp_path / "queue")
    records = [record(org.pk, n) for n in range(3)]
    for r in records:
        queue.append(r)
    assert queue.path is not None
    with open(queue.path, "ab") as handle:
        handle.write(record_line(record(org.pk, 99))[:40])  # killed mid-write
    writer = writer_for(tmp_path)
    writer.drain()  # its worker still holds it: the cut line may yet be completed
    assert UsageEvent.objects.count() == 3 and queue_files(tmp_path)
    queue.close()
    writer.drain()
    assert "cut line" in caplog.text
    assert_ledger_holds(records)
    assert queue_files(tmp_path) == []
    writer.close()


def test_a_file_a_worker_died_creating_is_removed_once_stale(org, tmp_path):
    (tmp_path / "queue").mkdir()
    stale = tmp_path / "queue" / "h-1-1.jsonl.new"
    fresh = tmp_path / "queue" / "h-2-1.jsonl.new"  # maybe being created right now
    stale.write_bytes(b"")
    fresh.write_bytes(b"")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    writer = writer_for(tmp_path)
    writer.drain()
    assert not stale.exists() and fresh.exists()
    writer.close()


def test_a_queue_that_cannot_be_written_keeps_records_until_it_can(org, tmp_path):
    blocked = tmp_path / "queue"
    blocked.write_bytes(b"")  # a file where the directory should be: every write fails
    queue = HandoffQueue(blocked)
    records = [record(org.pk, n) for n in range(3)]
    for r in records[:2]:
        queue.append(r)
    blocked.unlink()
    queue.append(records[2])  # retried with the next call
    queue.close()
    writer = writer_for(tmp_path)
    writer.drain()
    assert_ledger_holds(records)
    writer.close()


def test_poison_in_the_queue_costs_good_records_nothing(org, other_org, tmp_path):
    queue = HandoffQueue(tmp_path / "queue")
    good = [record(other_org.pk, n) for n in range(40)]
    for n, r in enumerate(good):
        queue.append(r)
        if n % 13 == 0:
            queue.append(record(org.pk, 1000 + n, usage=Usage(input_tokens=10**20)))
    queue.close()
    writer = writer_for(tmp_path, batch=7)
    writer.drain()
    assert UsageEvent.objects.filter(organization=other_org).count() == 40
    # From JSON a record is sanitized (clamped), so even these land, flagged.
    assert UsageEvent.objects.filter(organization=org).count() == 4
    assert dead_letter_count(tmp_path / "spool") == 0
    writer.close()


def test_spool_files_of_older_versions_are_replayed_once(org, tmp_path):
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    records = [record(org.pk, n) for n in range(10)]
    legacy = spool_dir / "oldhost-123-456.jsonl"  # as versions with the in-process buffer left it
    legacy.write_bytes(b"".join(record_line(r) for r in records))
    usage_record_batch(records[:3])  # some were written before the outage
    writer = writer_for(tmp_path)
    assert writer.drain() == 10  # 7 new, 3 skipped by the ledger (idempotent)
    assert not legacy.exists()
    assert_ledger_holds(records)
    writer.close()


def test_spool_replay_puts_a_file_back_when_the_database_is_away(org, tmp_path):
    spool = Spool(tmp_path)
    records = [record(org.pk, n) for n in range(5)]
    (tmp_path / "h-1-2.jsonl").write_bytes(b"".join(record_line(r) for r in records))
    ledger = Ledger()
    ledger.down = True
    with pytest.raises(OperationalError):
        spool.replay(ledger)
    assert len(spool.pending()) == 1  # put back for later, under a fresh name
    ledger.down = False
    assert spool.replay(ledger) == 5
    assert spool.pending() == []
    assert_ledger_holds(records)


def test_a_claimed_spool_file_is_left_to_its_claimant(org, tmp_path):
    claimed = tmp_path / f"h-1-2.jsonl.claimed-elsewhere-{os.getpid()}"
    claimed.write_bytes(record_line(record(org.pk, 1)))
    assert Spool(tmp_path).replay(usage_record_batch) == 0
    assert claimed.exists()


def test_healthz_reports_the_backlog_and_the_writer(client, org, tmp_path, settings):
    settings.AISPENDTRACK_QUEUE_DIR = tmp_path / "queue"
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    queue = HandoffQueue(tmp_path / "queue")
    records = [record(org.pk, n, created_at=an_hour_ago + timedelta(minutes=n)) for n in range(3)]
    for r in records:
        queue.append(r)
    body = client.get("/healthz").json()["queue"]
    assert body["records"] == 3
    assert body["bytes"] == sum(len(record_line(r)) for r in records)
    assert 3600 <= body["oldest_seconds"] < 3600 + 60
    assert body["writer"] == "stopped"

    writer = writer_for(tmp_path)
    writer.drain()
    assert writer_running(tmp_path / "queue")
    body = client.get("/healthz").json()["queue"]
    assert body == {"records": 0, "bytes": 0, "oldest_seconds": 0.0, "writer": "running"}
    writer.close()
    assert client.get("/healthz").json()["queue"]["writer"] == "stopped"
    queue.close()
