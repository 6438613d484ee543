"""The ledger write path: events + rollups in one batch, replay-safe."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum

from accounts.models import Organization
from accounts.services import api_key_issue, organizations_delete
from analytics.models import HourlyRollup, RollupDelta, Status, UsageEvent
from analytics.records import UsageRecord
from analytics.services import event_row, events_copy, owners_hold, usage_record_batch
from pricing.usage import Usage

T0 = datetime(2026, 11, 2, 10, 15, tzinfo=UTC)


def make_record(org, n: int, **overrides) -> UsageRecord:
    fields = dict(
        request_id=f"req_{org.pk}_{n}",
        organization_id=org.pk,
        api_key_id=None,
        created_at=T0 + timedelta(minutes=n),
        provider="openai",
        endpoint="/v1/chat/completions",
        status=Status.SUCCESS,
        model="gpt-4o",
        customer_id="cust-1",
        feature="chat",
        usage=Usage(input_tokens=100 + n, output_tokens=10 * n, cached_input_tokens=n),
        cost=Decimal("0.0000012345") * (n + 1),
        latency_ms=100 + n,
    )
    fields.update(overrides)
    return UsageRecord(**fields)


@pytest.mark.django_db(transaction=True)
def test_batch_writes_events_and_rollups_that_sum_to_them(org):
    records = [make_record(org, n) for n in range(50)]
    records.append(make_record(org, 99, model="unknown-model", cost=None))

    assert usage_record_batch(records) == 51

    assert UsageEvent.objects.filter(organization=org).count() == 51
    unpriced = UsageEvent.objects.get(request_id=f"req_{org.pk}_99")
    assert unpriced.priced is False and unpriced.cost == 0
    events = UsageEvent.objects.filter(organization=org).aggregate(
        cost=Sum("cost"), inp=Sum("input_tokens"), out=Sum("output_tokens")
    )
    rollups = HourlyRollup.objects.filter(organization=org).aggregate(
        cost=Sum("cost"),
        inp=Sum("input_tokens"),
        out=Sum("output_tokens"),
        calls=Sum("calls"),
        unpriced=Sum("unpriced_calls"),
    )
    expected_cost = sum((r.cost for r in records if r.cost is not None), Decimal(0))
    assert rollups["cost"] == events["cost"] == expected_cost
    assert rollups["inp"] == events["inp"] == sum(r.usage.input_tokens for r in records)
    assert rollups["out"] == events["out"]
    assert rollups["calls"] == 51
    assert rollups["unpriced"] == 1
    # minutes 0..44 fall in 10:00, 45..49 and 99 in 11:00; two models in 11:00.
    hours = sorted({r.hour for r in HourlyRollup.objects.filter(organization=org)})
    assert hours == [T0.replace(minute=0), T0.replace(minute=0) + timedelta(hours=1)]


@pytest.mark.django_db(transaction=True)
def test_replaying_a_batch_adds_nothing(org):
    records = [make_record(org, n) for n in range(5)]
    usage_record_batch(records)
    before = HourlyRollup.objects.get(organization=org, hour=T0.replace(minute=0))

    assert usage_record_batch(records) == 0
    # Half old, half new: only the new ones count.
    assert usage_record_batch(records + [make_record(org, 6)]) == 1

    after = HourlyRollup.objects.get(organization=org, hour=T0.replace(minute=0))
    assert after.calls == before.calls + 1
    assert after.cost == before.cost + records[0].cost * 7
    assert UsageEvent.objects.filter(organization=org).count() == 6


@pytest.mark.django_db(transaction=True)
def test_rollups_are_per_organization(org, other_org):
    usage_record_batch([make_record(org, 1), make_record(other_org, 1)])
    usage_record_batch([make_record(org, 2)])

    assert HourlyRollup.objects.get(organization=org).calls == 2
    assert HourlyRollup.objects.get(organization=other_org).calls == 1


@pytest.mark.django_db(transaction=True)
def test_batch_moves_key_last_used_at(org, api_key):
    assert api_key.row.last_used_at is None
    usage_record_batch([make_record(org, 1, api_key_id=api_key.row.pk)])
    api_key.row.refresh_from_db()
    assert api_key.row.last_used_at is not None


def test_record_json_round_trip_is_exact():
    record = UsageRecord(
        request_id="r1",
        organization_id=1,
        api_key_id=2,
        created_at=T0,
        provider="anthropic",
        endpoint="/v1/messages",
        status=Status.CANCELLED,
        properties={"plan": "pro"},
        usage=Usage(input_tokens=5, output_tokens=7, cache_write_1h_tokens=3),
        cost=Decimal("0.1234567891"),
    )
    assert UsageRecord.from_json(record.to_json()) == record


def test_a_line_of_an_older_version_reads_with_defaults_and_an_unknown_field_is_refused():
    """Lines from before a field existed (no usage counters beyond two, no
    ttfb, no clamped flag) still read; a field this version has never heard
    of is refused, as the writer's unreadable-line path expects."""
    old = {
        "request_id": "r-old",
        "organization_id": 1,
        "api_key_id": None,
        "created_at": "2026-03-01T10:00:00+00:00",
        "provider": "openai",
        "endpoint": "/v1/chat/completions",
        "status": "ok",
        "cost": "0.5",
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    record = UsageRecord.from_json(old)
    assert (record.request_id, record.api_key_id, record.cost) == ("r-old", None, Decimal("0.5"))
    assert record.created_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert (record.model, record.ttfb_ms, record.clamped) == ("", None, False)
    assert record.properties == {}
    assert record.usage == Usage(input_tokens=3, output_tokens=4)
    full = UsageRecord.from_json({**old, "usage": {**old["usage"], "reasoning_tokens": 1}})
    assert full.usage.reasoning_tokens == 1
    with pytest.raises(TypeError):
        UsageRecord.from_json({**old, "surprise": 1})
    width = len(dataclasses.fields(UsageRecord)) - 1  # with created_at: as many as a record
    other = {f"x{n}": 0 for n in range(width)}
    with pytest.raises((TypeError, KeyError)):
        UsageRecord.from_json({**other, "created_at": old["created_at"]})


@pytest.mark.django_db(transaction=True)
def test_every_field_is_stored_as_given(org, api_key):
    """The PostgreSQL path writes with COPY: check each column round-trips."""
    record = make_record(
        org,
        7,
        api_key_id=api_key.row.pk,
        properties={"plan": "pro", "note": 'tab\there, "quotes", ünïcode ✓'},
        response_model="gpt-4o-2024-08-06",
        trace_id="trace-1",
        environment="staging",
        http_status=200,
        ttfb_ms=42,
        streamed=True,
        upstream_request_id="chatcmpl-xyz",
        usage=Usage(
            input_tokens=1000,
            output_tokens=300,
            cached_input_tokens=200,
            cache_write_tokens=50,
            cache_write_1h_tokens=25,
            reasoning_tokens=100,
            input_audio_tokens=7,
            output_audio_tokens=3,
        ),
        cost=Decimal("0.1234567891"),
    )
    usage_record_batch([record])

    event = UsageEvent.objects.get(request_id=record.request_id)
    assert event.properties == record.properties
    assert (event.response_model, event.trace_id, event.environment) == (
        "gpt-4o-2024-08-06",
        "trace-1",
        "staging",
    )
    assert (event.http_status, event.ttfb_ms, event.streamed) == (200, 42, True)
    assert event.upstream_request_id == "chatcmpl-xyz"
    assert event.api_key_id == api_key.row.pk
    assert event.created_at == record.created_at
    assert (event.cost, event.priced) == (Decimal("0.1234567891"), True)
    stored = Usage(**{name: getattr(event, name) for name in Usage.__slots__})
    assert stored == record.usage

    # Beside a replayed record (the careful path's own COPY): the empty and null values.
    bare = make_record(org, 8, cost=None, http_status=None, ttfb_ms=None, properties={})
    assert usage_record_batch([record, bare]) == 1
    event = UsageEvent.objects.get(request_id=bare.request_id)
    # An unpriced call is stored at cost 0, marked unpriced.
    assert (event.cost, event.priced, event.http_status, event.ttfb_ms) == (0, False, None, None)
    assert (event.properties, event.api_key_id, event.streamed) == ({}, None, False)
    assert event.created_at == bare.created_at


def _hourly_totals(org) -> dict:
    return HourlyRollup.objects.filter(organization=org).aggregate(
        calls=Sum("calls"), cost=Sum("cost"), inp=Sum("input_tokens")
    )


def _event_totals(org) -> dict:
    """The oracle: a plain aggregate over the stored events."""
    sums = UsageEvent.objects.filter(organization=org).aggregate(
        cost=Sum("cost"), inp=Sum("input_tokens")
    )
    return {"calls": UsageEvent.objects.filter(organization=org).count(), **sums}


@pytest.mark.django_db
def test_two_batches_in_one_transaction_are_each_counted_once(org):
    # The caller's transaction stays open: nothing a batch stages may leak
    # into the next batch's rollups or deltas.
    with transaction.atomic():
        usage_record_batch([make_record(org, n) for n in range(3)])
        usage_record_batch([make_record(org, n) for n in range(3, 5)])
    assert _hourly_totals(org) == _event_totals(org)
    assert _event_totals(org)["calls"] == 5
    assert RollupDelta.objects.filter(organization=org).aggregate(c=Sum("calls"))["c"] == 5


@pytest.mark.django_db(transaction=True)
def test_a_request_id_twice_in_one_batch_is_stored_and_counted_once(org):
    first = make_record(org, 1)
    assert usage_record_batch([first, make_record(org, 2), first]) == 2
    assert UsageEvent.objects.filter(organization=org).count() == 2
    assert _hourly_totals(org) == _event_totals(org)


@pytest.mark.django_db(transaction=True)
def test_a_replay_mixed_with_new_records_adds_only_the_new_ones_to_every_log(org):
    old = [make_record(org, n) for n in range(4)]
    usage_record_batch(old)
    deltas_before = RollupDelta.objects.filter(organization=org).aggregate(c=Sum("calls"))["c"]

    assert usage_record_batch([*old, make_record(org, 9)]) == 1

    assert _hourly_totals(org) == _event_totals(org)
    deltas = RollupDelta.objects.filter(organization=org).aggregate(c=Sum("calls"))["c"]
    assert (deltas_before, deltas) == (4, 5)


@pytest.mark.django_db(transaction=True)
def test_a_batch_naming_a_missing_organization_is_refused_not_taken_for_a_replay(org):
    # The caller (proxy.ledger) bisects a refused batch; a replay is not refused.
    ghost = make_record(org, 1, organization_id=org.pk + 10_000)
    with pytest.raises(IntegrityError):
        usage_record_batch([make_record(org, 2), ghost])
    assert not UsageEvent.objects.filter(organization=org).exists()
    assert not HourlyRollup.objects.exists()


# --- The batch's organizations and keys (no database constraint: owners_hold) ----


@pytest.mark.django_db(transaction=True)
def test_a_batch_naming_a_deleted_organization_or_key_writes_nothing(org, other_org):
    key, _ = api_key_issue(organization=org, name="gone")
    gone_key = key.pk
    key.delete()
    gone = Organization.objects.create(name="Gone", slug="gone")
    gone_org = gone.pk
    gone.delete()
    strays = (
        make_record(org, 1, api_key_id=gone_key),
        make_record(org, 2, organization_id=gone_org),
    )
    for stray in strays:
        batch = [make_record(other_org, 3), stray]
        with pytest.raises(IntegrityError, match="rows deleted since"):
            usage_record_batch(batch)
        assert not UsageEvent.objects.exists() and not HourlyRollup.objects.exists()
    # The writer's isolation then drops or mends the stray and lands the rest
    # (tests/proxy/test_ledger_isolation.py).


@pytest.mark.django_db(transaction=True)
def test_deleting_an_organization_deletes_its_events_and_no_one_elses(org, other_org):
    key, _ = api_key_issue(organization=org, name="k")
    usage_record_batch(
        [make_record(org, n, api_key_id=key.pk) for n in range(5)]
        + [make_record(other_org, n) for n in range(5, 8)]
    )
    organizations_delete(ids=[org.pk])
    assert list(UsageEvent.objects.values_list("organization_id", flat=True)) == [other_org.pk] * 3


def _in_other_thread(work):
    """Run `work` on its own connection; returns (started, finished, outcome)."""
    started, finished, outcome = threading.Event(), threading.Event(), {}

    def run():
        try:
            started.set()
            outcome["value"] = work()
        except Exception as error:  # handed to the test
            outcome["error"] = error
        finally:
            connection.close()
            finished.set()

    threading.Thread(target=run, daemon=True).start()
    return started, finished, outcome


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.django_db(transaction=True)
def test_a_deletion_waits_for_a_batch_in_flight_and_deletes_its_events(org, other_org):
    """The writer holds its organizations until it commits; the deletion's
    cascade then sees (and deletes) the batch: no orphaned event."""
    with transaction.atomic():
        owners_hold([make_record(org, 1), make_record(other_org, 2)])
        events_copy([event_row(make_record(org, n)) for n in range(3)])
        started, finished, outcome = _in_other_thread(lambda: organizations_delete(ids=[org.pk]))
        started.wait(5)
        assert not finished.wait(0.5)  # the deletion waits for this batch
    assert finished.wait(10) and "error" not in outcome
    assert not UsageEvent.objects.filter(organization_id=org.pk).exists()


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.django_db(transaction=True)
def test_a_batch_waits_for_a_deletion_in_flight_and_then_refuses(org, other_org):
    """A deletion that locked the organization first: the batch waits, then
    finds the organization gone and writes nothing (its caller drops its records)."""
    org_id = org.pk
    with transaction.atomic():
        organizations_delete(ids=[org_id])
        started, finished, outcome = _in_other_thread(
            lambda: usage_record_batch([make_record(org, 1), make_record(other_org, 2)])
        )
        started.wait(5)
        assert not finished.wait(0.5)  # the batch waits for the deletion
    assert finished.wait(10)
    assert isinstance(outcome.get("error"), IntegrityError)
    assert not UsageEvent.objects.exists()
