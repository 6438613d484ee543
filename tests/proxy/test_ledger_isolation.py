"""One tenant's bad record never costs another tenant's: sanitizing, bisecting,
dead letters, re-drive, a spool file that fails, a deleted organization."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.core.management import call_command
from django.db import DataError, OperationalError, connection
from django.db.models import Sum

from accounts.models import Organization
from accounts.services import api_key_issue
from analytics.models import HourlyRollup, Status, UsageEvent
from analytics.records import (
    CLAMPED_PROPERTY,
    SANITIZE_VERSION,
    TOKEN_CEILING,
    UsageRecord,
    record_sanitize,
)
from analytics.services import usage_record_batch
from pricing.usage import Usage
from proxy.handoff import HandoffQueue, record_line
from proxy.ledger import DeadLetters, IsolatingWriter, dead_letter_count
from proxy.spool import Spool
from proxy.writer import LedgerWriter


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
        "usage": Usage(input_tokens=10, output_tokens=n),
        "cost": Decimal("0.0000010000"),
    }
    values.update(fields)
    return UsageRecord(**values)


def refused(records: list[UsageRecord]) -> list[UsageRecord]:
    """The poisoned records this database refuses (SQLite stores NUL; PostgreSQL does not)."""
    return records if connection.vendor == "postgresql" else records[:2]


def poisoned(org_id: int, n: int) -> list[UsageRecord]:
    """Three records PostgreSQL refuses as they are (unsanitized on purpose)."""
    return [
        record(org_id, n, model="x\ud800y"),  # lone surrogate: not encodable
        record(org_id, n + 1, usage=Usage(input_tokens=10**20)),  # past bigint
        record(org_id, n + 2, customer_id="c\x00"),  # NUL: PostgreSQL refuses it
    ]


# --- sanitizing ----------------------------------------------------------------


def test_sanitize_makes_every_field_storable_and_flags_clamping():
    raw = record(
        1,
        1,
        model="x\x00y\ud800",
        customer_id="é" * 300,
        feature="tab\there",
        properties={"k\x00": "v\ud801"},
        usage=Usage(input_tokens=10**20, output_tokens=-5, reasoning_tokens=7),
        latency_ms=2**40,
        http_status=70000,
        cost=Decimal("1e12"),
    )
    clean = record_sanitize(raw)
    assert clean.model == "xy\ufffd"
    assert clean.customer_id == "é" * 256
    assert clean.feature == "tabhere"
    assert clean.properties["k"] == "v\ufffd"
    assert (clean.usage.input_tokens, clean.usage.output_tokens) == (TOKEN_CEILING, 0)
    assert clean.usage.reasoning_tokens == 7
    assert (clean.latency_ms, clean.http_status) == (2**31 - 1, 32767)
    assert clean.cost == Decimal("9999999999.9999999999")
    assert clean.clamped is True
    flagged = set(clean.properties[CLAMPED_PROPERTY].split(","))
    assert flagged == {"input_tokens", "output_tokens", "latency_ms", "http_status", "cost"}
    # Idempotent, and the spool round trip keeps the flag.
    again = UsageRecord.from_json(json.loads(json.dumps(clean.to_json())))
    assert again == clean


def test_an_ordinary_record_is_left_alone():
    plain = record(1, 2, customer_id="acme", properties={"team": "search"})
    assert record_sanitize(record(1, 2, customer_id="acme", properties={"team": "search"})) == plain
    assert plain.clamped is False


def test_the_writer_sanitizes_a_line_again_unless_this_version_sanitized_it():
    """A proxy's line carries the mark of the record_sanitize that made it
    storable; the writer reads such a line as written. A line without the
    mark (an older version's, or a record built by hand) or with an older
    mark is sanitized again."""
    long_model = "m" * 250  # the column takes 200
    line = json.loads(record_line(record(1, 4, model=long_model)))
    assert line["sanitized"] == 0
    for mark in (None, 0, SANITIZE_VERSION - 1):
        older = {key: value for key, value in line.items() if key != "sanitized"}
        if mark is not None:
            older["sanitized"] = mark
        assert UsageRecord.from_json(older).model == "m" * 200
    marked = UsageRecord.from_json({**line, "sanitized": SANITIZE_VERSION})
    assert marked.model == long_model  # trusted: not sanitized a second time
    clean = record_sanitize(record(1, 4, model=long_model))
    assert (clean.model, clean.sanitized) == ("m" * 200, SANITIZE_VERSION)
    assert json.loads(record_line(clean))["sanitized"] == SANITIZE_VERSION


TEXT_FIELDS = [
    "request_id", "provider", "endpoint", "status", "model", "response_model",
    "customer_id", "feature", "trace_id", "environment", "upstream_request_id",
]  # fmt: skip


@pytest.mark.parametrize("name", TEXT_FIELDS)
@pytest.mark.parametrize("others_long", [False, True])
def test_each_text_is_cut_to_its_column_and_no_shorter(name, others_long):
    """The oracle is the column itself (UsageEvent's max_length), plain ASCII
    text: with the other texts short (together under 200 characters) and long."""
    column = UsageEvent._meta.get_field(name).max_length
    others = {"feature": "f" * 250} if others_long and name != "feature" else {}
    over = record_sanitize(record(1, 3, **{**others, name: "a" * (column + 1)}))
    assert getattr(over, name) == "a" * column
    exact = record_sanitize(record(1, 3, **{**others, name: "b" * column}))
    assert getattr(exact, name) == "b" * column
    assert exact.feature == others.get("feature", exact.feature)


# --- isolation -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_mixed_tenant_batch_writes_every_good_record(org, other_org, tmp_path):
    """Org B's 40 ordinary records and org A's poisoned ones in one batch: all
    of B's land, A's good ones too, A's poisoned ones go to dead letters."""
    good_b = [record(other_org.pk, n) for n in range(40)]
    good_a = [record(org.pk, n) for n in range(100, 110)]
    bad_a = poisoned(org.pk, 200)
    batch = [*good_b[:20], *bad_a[:2], *good_a, *good_b[20:], bad_a[2]]
    writer = IsolatingWriter(DeadLetters(tmp_path))
    written = writer(batch)

    refused_a = refused(bad_a)
    landed = set(UsageEvent.objects.values_list("request_id", flat=True))
    assert landed == {r.request_id for r in batch if r not in refused_a}
    assert written == len(batch) - len(refused_a)
    dead = [json.loads(line) for line in (writer.dead.directory / writer.dead.name).open()]
    assert {d["record"]["request_id"] for d in dead} == {r.request_id for r in refused_a}
    assert all(d["error"] for d in dead)
    assert dead_letter_count(tmp_path) == len(refused_a)
    # Rollups hold exactly the written events (independent oracle: the events).
    events = UsageEvent.objects.aggregate(t=Sum("input_tokens"), o=Sum("output_tokens"))
    assert HourlyRollup.objects.aggregate(t=Sum("input_tokens"), o=Sum("output_tokens")) == events
    assert HourlyRollup.objects.aggregate(c=Sum("calls"))["c"] == written


@pytest.mark.django_db(transaction=True)
def test_sanitized_poison_lands_with_everyone_else(org, other_org, tmp_path):
    batch = [
        *(record(other_org.pk, n) for n in range(20)),
        *(record_sanitize(r) for r in poisoned(org.pk, 200)),
    ]
    writer = IsolatingWriter(DeadLetters(tmp_path))
    assert writer(batch) == 23
    assert writer.dead_lettered == 0
    big = UsageEvent.objects.get(request_id=f"req_{201:024x}")
    assert big.input_tokens == TOKEN_CEILING
    assert big.properties[CLAMPED_PROPERTY] == "input_tokens"


@pytest.mark.django_db(transaction=True)
def test_a_deleted_organizations_records_are_dropped_with_a_log_line(
    org, other_org, tmp_path, caplog
):
    gone = Organization.objects.create(name="Gone", slug="gone")
    gone_id = gone.pk
    gone.delete()
    writer = IsolatingWriter(DeadLetters(tmp_path))
    assert writer([record(gone_id, 1), record(other_org.pk, 2), record(org.pk, 3)]) == 2
    assert writer.dropped == 1 and writer.dead_lettered == 0
    assert f"organization {gone_id} no longer exists" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_an_outage_is_not_a_data_error(org, tmp_path):
    def down(records):
        raise OperationalError("connection refused")

    writer = IsolatingWriter(DeadLetters(tmp_path), down)
    with pytest.raises(OperationalError):
        writer([record(org.pk, n) for n in range(8)])
    assert dead_letter_count(tmp_path) == 0


@pytest.mark.django_db(transaction=True)
def test_dead_letters_are_redriven_after_a_fix(org, tmp_path, settings, capsys):
    settings.AISPENDTRACK_SPOOL_DIR = tmp_path
    refused = {f"req_{3:024x}", f"req_{5:024x}"}

    def strict(records):  # a ledger with a bug that refuses two records
        if any(r.request_id in refused for r in records):
            raise DataError("value out of range")
        return usage_record_batch(records)

    writer = IsolatingWriter(DeadLetters(tmp_path), strict)
    assert writer([record(org.pk, n) for n in range(8)]) == 6
    assert dead_letter_count(tmp_path) == 2

    call_command("ledger_redrive")  # "the fix": the real ledger takes them
    assert "2 written" in capsys.readouterr().out
    assert UsageEvent.objects.count() == 8
    assert dead_letter_count(tmp_path) == 0
    call_command("ledger_redrive")  # nothing left, nothing doubled
    assert UsageEvent.objects.count() == 8


@pytest.mark.django_db(transaction=True)
def test_spool_replay_goes_on_past_a_failing_file(org, tmp_path):
    second = Spool(tmp_path)  # files left by two workers of an older version
    (tmp_path / "h-1-1.jsonl").write_bytes(record_line(record(org.pk, 1)))
    (tmp_path / "h-2-1.jsonl").write_bytes(record_line(record(org.pk, 2)))

    def broken_first(records):
        if records[0].request_id == f"req_{1:024x}":
            raise RuntimeError("a bug in this file's records")
        return usage_record_batch(records)

    assert second.replay(broken_first) == 1
    assert UsageEvent.objects.filter(request_id=f"req_{2:024x}").exists()
    assert len(second.pending()) == 1  # the failing one is kept for later
    assert second.replay(usage_record_batch) == 1
    assert UsageEvent.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_writer_never_loses_good_records_to_poison(org, other_org, tmp_path):
    """A ledger that refuses some records of a queue (here: it is given them
    unsanitized, as they were before sanitizing): the writer bisects, every
    good record lands, the refused ones are dead letters, the queue empties."""
    poison = {
        bad.request_id: bad for n in range(0, 40, 13) for bad in poisoned(org.pk, 1000 + 3 * n)
    }
    queue = HandoffQueue(tmp_path / "queue")
    for n in range(40):
        queue.append(record(other_org.pk, n))
        if n % 13 == 0:
            for bad in poisoned(org.pk, 1000 + 3 * n):
                queue.append(bad)
    queue.close()

    def unsanitized(records):
        return usage_record_batch([poison.get(r.request_id, r) for r in records])

    writer = LedgerWriter(
        queue_dir=tmp_path / "queue", spool_dir=tmp_path, batch=7, write=unsanitized
    )
    writer.drain()
    writer.close()
    assert UsageEvent.objects.filter(organization=other_org).count() == 40
    assert list((tmp_path / "queue").glob("*.jsonl")) == []  # nothing left "for later"
    assert dead_letter_count(tmp_path) == 4 * len(refused(poisoned(org.pk, 0)))


# --- end to end: the issue's case ----------------------------------------------


@pytest.mark.slow
def test_poisoned_calls_of_one_org_cost_another_org_nothing(
    proxy, org, other_org, owner, other_owner
):
    """Org B sends 40 ordinary calls while org A sends poisoned ones: every
    call lands (A's sanitized and flagged), none goes to dead letters."""
    _, key_a = api_key_issue(organization=org, name="a", scopes=["proxy"], created_by=owner)
    _, key_b = api_key_issue(
        organization=other_org, name="b", scopes=["proxy"], created_by=other_owner
    )
    poison = [
        ({"model": "x\u0000y", "messages": []}, {}),
        ({"model": "\ud800", "messages": []}, {}),
        ({"model": "gpt-4o", "messages": []}, {"x-fake-usage": '{"prompt_tokens": 1e20}'}),
        ({"model": "gpt-4o", "messages": []}, {"x-fake-usage": f'{{"prompt_tokens": {10**20}}}'}),
        ({"model": "gpt-4o", "messages": []}, {"x-customer-id": "c" * 300}),
    ]

    def send(key: str, body: dict, headers: dict) -> str:
        content = json.dumps(body).encode()  # ensure_ascii: the surrogate travels escaped
        response = httpx.post(
            f"{proxy.url}/v1/chat/completions",
            content=content,
            headers={"x-aispendtrack-key": key, "content-type": "application/json", **headers},
            timeout=30,
        )
        return response.headers.get("x-aispendtrack-request-id", f"none-{response.status_code}")

    with ThreadPoolExecutor(4) as pool:
        ordinary = {"model": "gpt-4o", "messages": []}
        b_ids = [pool.submit(send, key_b, ordinary, {}) for _ in range(40)]
        a_ids = [pool.submit(send, key_a, body, headers) for body, headers in poison * 2]
        b_ids = [f.result() for f in b_ids]
        a_ids = [f.result() for f in a_ids]

    events = proxy.events(50)
    landed = {e.request_id for e in events}
    assert set(b_ids) <= landed and len(set(b_ids)) == 40
    assert set(a_ids) - {i for i in a_ids if i.startswith("none-")} <= landed
    a_events = [e for e in events if e.organization_id == org.pk]
    assert len(a_events) == len(a_ids)
    assert any(e.input_tokens == TOKEN_CEILING for e in a_events)
    assert all("\x00" not in e.model for e in a_events)
    assert proxy.writer is not None
    assert dead_letter_count(proxy.writer.dead.directory.parent) == 0


@pytest.mark.django_db(transaction=True)
def test_a_deleted_key_costs_its_batch_one_retry_not_a_bisection(org, other_org, tmp_path):
    """Staff delete a busy key in admin while its calls wait in the queue: every
    call still lands (without its key), in a few writes rather than ~2 a record."""
    row, _ = api_key_issue(organization=org, name="busy")
    kept, _ = api_key_issue(organization=other_org, name="kept")
    batch = [record(org.pk, n, api_key_id=row.pk) for n in range(200)]
    batch += [record(other_org.pk, n, api_key_id=kept.pk) for n in range(200, 250)]
    gone = Organization.objects.create(name="Gone", slug="gone")
    batch.append(record(gone.pk, 300))
    row.delete()
    gone.delete()
    attempts = []

    def counting(records):
        attempts.append(len(records))
        return usage_record_batch(records)

    writer = IsolatingWriter(DeadLetters(tmp_path), counting)
    assert writer(batch) == 250
    assert attempts == [251, 250]
    assert writer.dropped == 1 and writer.dead_lettered == 0
    events = UsageEvent.objects.filter(organization=org)
    assert events.count() == 200 and not events.exclude(api_key=None).exists()
    assert UsageEvent.objects.filter(organization=other_org, api_key=kept).count() == 50
