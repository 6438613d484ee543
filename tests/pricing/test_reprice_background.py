"""Prices apply themselves (issue 12): saving a price, in the app or in Django
admin, queues a re-pricing run that a real Celery worker carries out; the
banner says "re-pricing N calls…", survives a reload, then says "done". The new
costs are computed by hand from the price saved."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from celery.contrib.testing.worker import start_worker
from django.urls import reverse

from accounts.models import Role
from analytics.fold import rollups_fold_until_done
from analytics.models import HourlyRollup, RepriceRun, RepriceStatus, UsageEvent
from analytics.selectors.events import latest_call_marker
from analytics.services import usage_record_batch
from config.celery import app
from pricing import engine
from pricing.models import Provider
from tests.alerts.test_delivery import wait_for
from tests.factories import MembershipFactory, UserFactory
from tests.pricing.test_reprice import record

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
T0 = datetime(2025, 3, 10, 10, 15, tzinfo=UTC)


def _banner(client, path="/dashboard/") -> str:
    html = client.get(path).content.decode()
    start = html.find('class="callout callout-info reprice-banner"')
    return "" if start < 0 else html[start : html.index("</div>", start)]


@pytest.fixture
def unpriced(org, other_org):
    """Three calls on a model without a price (1M input + 100k output tokens
    each), one on another unpriced model, and another organization's call on
    the same model: all unpriced at ingest."""
    engine.ensure_fresh(force=True)
    usage_record_batch(
        [
            record(org, 1, model="ft:acme", at=T0),
            record(org, 2, model="ft:acme", at=T0),
            record(org, 3, model="ft:acme", at=T0),
            record(org, 4, model="mystery", at=T0),
            record(other_org, 5, model="ft:acme", at=T0),
        ]
    )
    rollups_fold_until_done()
    assert UsageEvent.objects.filter(priced=True).count() == 0


def test_saving_an_override_reprices_in_the_background(client, org, owner, other_org, unpriced):
    client.force_login(owner)
    marker_before = latest_call_marker(organization=org)
    saved = client.post(
        "/settings/pricing/",
        {"model": "ft:acme", "provider": "", "input": "10", "output": "2"},
        follow=True,
    )
    assert "re-pricing 3 calls recorded without a price in the background" in (
        saved.content.decode()
    )
    (run,) = RepriceRun.objects.all()
    assert (run.organization_id, run.calls, run.status) == (org.pk, 3, RepriceStatus.QUEUED)
    # No worker yet: every page (and a reload) says it is under way.
    for _ in range(2):
        assert "Re-pricing 3 calls on <code>ft:acme</code>…" in _banner(client)
    assert "Re-pricing 3 calls" in _banner(client, "/requests/")
    assert latest_call_marker(organization=org) != marker_before  # live pages re-render
    marker_queued = latest_call_marker(organization=org)

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        assert wait_for(lambda: RepriceRun.objects.get(pk=run.pk).status == RepriceStatus.DONE), (
            RepriceRun.objects.values("status", "error").get()
        )
    rollups_fold_until_done()  # the fold loop, within seconds

    # By hand: 1M × $10/M + 100k × $2/M = $10.20 a call.
    events = UsageEvent.objects.filter(organization=org, model="ft:acme")
    assert sorted((e.priced, e.cost) for e in events) == [(True, Decimal("10.2"))] * 3
    rollup = HourlyRollup.objects.get(organization=org, model="ft:acme")
    assert (rollup.cost, rollup.unpriced_calls) == (Decimal("30.6"), 0)
    # Another model, and another organization's calls on this one, stay unpriced.
    assert not UsageEvent.objects.get(organization=org, model="mystery").priced
    assert not UsageEvent.objects.get(organization=other_org).priced
    run.refresh_from_db()
    assert (run.repriced, run.finished_at is not None) == (3, True)
    assert latest_call_marker(organization=org) != marker_queued
    page = client.get("/dashboard/").content.decode()
    assert "Done: re-priced 3 calls on <code>ft:acme</code>" in page
    assert "Re-pricing 3 calls" not in page
    # Another organization's members see none of it.
    stranger = UserFactory(email="globex@example.com")
    MembershipFactory(user=stranger, organization=other_org, role=Role.OWNER)
    client.force_login(stranger)
    assert "ft:acme" not in client.get("/dashboard/").content.decode()


def test_saving_a_list_price_in_admin_reprices_every_organization(
    client, org, other_org, unpriced, builtin_providers
):
    staff = UserFactory(email="staff@aispendtrack.test", is_staff=True, is_superuser=True)
    client.force_login(staff)
    form = {
        "provider": Provider.objects.get(slug="openai").pk,
        "model_id": "ft:acme",
        "name": "Acme fine-tune",
        "effective_from_0": "2000-01-01",
        "effective_from_1": "00:00:00",
        "time_window": "",
        "input": "4",
        "output": "8",
        "tiers": "[]",
        "match_rules": '{"equals": "ft:acme"}',
        "match_order": "1",
    }
    response = client.post(reverse("admin:pricing_modelprice_add"), form, follow=True)
    assert "Re-pricing 4 calls recorded without a price, of 2 organizations" in (
        response.content.decode()
    )
    runs = {run.organization_id: run for run in RepriceRun.objects.all()}
    assert {k: r.calls for k, r in runs.items()} == {org.pk: 3, other_org.pk: 1}

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        assert wait_for(
            lambda: RepriceRun.objects.filter(status=RepriceStatus.DONE).count() == 2
        ), list(RepriceRun.objects.values("status", "error"))
    # By hand: 1M × $4/M + 100k × $8/M = $4.80 a call, in both organizations.
    costs = sorted(UsageEvent.objects.filter(model="ft:acme").values_list("priced", "cost"))
    assert costs == [(True, Decimal("4.8"))] * 4
    assert not UsageEvent.objects.get(model="mystery").priced


def test_a_price_that_prices_nothing_starts_nothing(client, org, owner, unpriced):
    client.force_login(owner)
    saved = client.post(
        "/settings/pricing/",
        {"model": "never-called", "provider": "", "input": "1", "output": "1"},
        follow=True,
    )
    assert "New calls use it within seconds." in saved.content.decode()
    assert not RepriceRun.objects.exists()
    assert _banner(client) == ""
