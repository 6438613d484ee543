"""seed_demo_usage: realistic, deterministic, written through the ledger path."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, Sum

from accounts.models import Organization
from analytics.models import HourlyRollup, UsageEvent
from tests.factories import OrganizationFactory


def test_seed_demo_usage_is_realistic_consistent_and_idempotent(db):
    out = StringIO()
    call_command("seed_demo_usage", org="Demo Co", days=10, events=3000, seed=7, stdout=out)
    assert "3,000 new events" in out.getvalue() and "events/s" in out.getvalue()
    org = Organization.objects.get(name="Demo Co")
    events = UsageEvent.objects.filter(organization=org)
    assert events.count() == 3000

    providers = set(events.values_list("provider", flat=True).distinct())
    assert {"openai", "anthropic", "gemini"} <= providers
    assert events.values("customer_id").distinct().count() > 30
    assert events.exclude(status="success").exists()
    assert events.filter(streamed=True).exists() and events.filter(priced=False).exists()
    assert events.exclude(trace_id="").values("trace_id").annotate(n=Count("pk")).filter(n__gt=1)

    rollups = HourlyRollup.objects.filter(organization=org).aggregate(
        calls=Sum("calls"), tokens=Sum("input_tokens")
    )
    assert rollups["calls"] == 3000
    assert rollups["tokens"] == events.aggregate(t=Sum("input_tokens"))["t"]

    again = StringIO()
    call_command("seed_demo_usage", org="Demo Co", days=10, events=3000, seed=7, stdout=again)
    assert "0 new events" in again.getvalue()
    assert HourlyRollup.objects.filter(organization=org).aggregate(c=Sum("calls"))["c"] == 3000


def test_seed_org_by_slug_or_name_and_refuses_an_ambiguous_name(db):
    first = OrganizationFactory(name="Twin", slug="twin")
    OrganizationFactory(name="Twin", slug="twin-2")
    unique = OrganizationFactory(name="Only One", slug="only-one")
    options = {"days": 2, "events": 20, "seed": 1, "stdout": StringIO()}

    call_command("seed_demo_usage", org="twin", **options)  # a slug
    assert UsageEvent.objects.filter(organization=first).count() == 20
    call_command("seed_demo_usage", org="only one", **options)  # a name, any case
    assert UsageEvent.objects.filter(organization=unique).count() == 20
    with pytest.raises(CommandError, match="2 organizations are named 'Twin'"):
        call_command("seed_demo_usage", org="Twin", **options)
    assert Organization.objects.count() == 3  # nothing created by mistake
