"""UsageShapeRollup: the simulator's token sums equal a plain GROUP BY over the events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection

from analytics.models import UsageShapeRollup
from analytics.shapes import input_band
from pricing.usage import Usage
from tests.analytics.conftest import call

T0 = datetime(2026, 11, 2, 9, 15, tzinfo=UTC)


def test_input_band_edges_follow_the_tier_rule():
    # A tier "above 200000" applies from 200001 input tokens on.
    assert input_band(0) == 0
    assert input_band(32_000) == 0
    assert input_band(32_001) == 1
    assert input_band(199_999) == 3
    assert input_band(200_000) == 4
    assert input_band(200_001) == 5
    assert input_band(10**9) == 9


def _shaped(org, at, input_tokens, **usage):
    record = call(org, at, feature="chat", customer_id="c1", model="claude-sonnet-4")
    record.usage = Usage(input_tokens=input_tokens, **usage)
    return record


def test_shape_rows_equal_a_group_by_over_events(org, ingest):
    ingest(
        _shaped(org, T0, 1_000, output_tokens=50, cached_input_tokens=400, reasoning_tokens=20),
        _shaped(org, T0 + timedelta(minutes=5), 3_000, output_tokens=7, cache_write_tokens=900),
        _shaped(org, T0 + timedelta(minutes=9), 250_000, output_tokens=9, cache_write_1h_tokens=5),
        _shaped(org, T0 + timedelta(hours=1), 220_000, output_tokens=1, input_audio_tokens=3),
    )
    # A second batch adds to the same rows and raises the maximum.
    ingest(_shaped(org, T0 + timedelta(minutes=20), 260_000, output_tokens=2))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT SUM(input_tokens), SUM(output_tokens), SUM(cached_input_tokens), "
            "SUM(cache_write_tokens), SUM(cache_write_1h_tokens), SUM(reasoning_tokens), "
            "SUM(input_audio_tokens), COUNT(*), MAX(input_tokens) "
            "FROM analytics_usageevent WHERE organization_id = %s AND input_tokens > 200000 "
            "AND input_tokens <= 256000",
            [org.pk],
        )
        expected = cursor.fetchone()
    rows = UsageShapeRollup.objects.filter(organization=org, band=5)
    got = [
        sum(getattr(r, name) for r in rows)
        for name in (
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "cache_write_1h_tokens",
            "reasoning_tokens",
            "input_audio_tokens",
            "calls",
        )
    ] + [max(r.max_input_tokens for r in rows)]
    assert tuple(got) == tuple(expected)
    # Hand check: band 0 holds the two small calls of 09:00, as one row.
    (small,) = UsageShapeRollup.objects.filter(organization=org, band=0)
    assert (small.calls, small.input_tokens, small.max_input_tokens) == (2, 4_000, 3_000)
    assert (small.cached_input_tokens, small.cache_write_tokens) == (400, 900)
    assert sorted(r.max_input_tokens for r in rows) == [220_000, 250_000]
    (big,) = UsageShapeRollup.objects.filter(organization=org, band=6)
    assert (big.calls, big.input_tokens, big.max_input_tokens) == (1, 260_000, 260_000)
