"""Dashboard pages render what the selectors say, with the period and filters applied."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics.models import Status, UsageEvent
from analytics.periods import org_today
from tests.analytics.conftest import call


@pytest.fixture
def spend(org, api_key, ingest):
    t = timezone.now() - timedelta(minutes=5)
    return ingest(
        call(org, t, cost="0.5000000000", customer_id="cust/ä 1", feature="chat", trace_id="run-1"),
        call(org, t, cost="0.2500000000", customer_id="cust/ä 1", feature="chat", trace_id="run-1"),
        call(
            org,
            t,
            cost="3.0000000000",
            model="claude-opus-4",
            provider="anthropic",
            customer_id="big-co",
            feature="search",
            api_key_id=api_key.row.pk,
        ),
        call(org, t, cost=None, model="mystery", status=Status.UPSTREAM_ERROR),
    )


def test_login_required(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_new_org_sees_setup_snippet_and_waiting_poll(owner_client, org):
    response = owner_client.get("/dashboard/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "Waiting for your first call" in body
    assert 'base_url="http://testserver/v1"' in body  # OpenAI, Python
    assert 'new Anthropic({ baseURL: "http://testserver"' in body
    assert owner_client.get("/dashboard/first-call.json").json() == {"has_calls": False}


def test_first_call_flips_the_poll(owner_client, org, ingest):
    ingest(call(org, timezone.now()))
    assert owner_client.get("/dashboard/first-call.json").json() == {"has_calls": True}
    assert "Waiting for your first call" not in owner_client.get("/dashboard/").content.decode()


def test_overview(owner_client, spend):
    response = owner_client.get("/dashboard/?range=7d")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="trend-chart"' in body and 'id="model-pie"' in body
    assert "chart.umd.min.js" in body and "cdn" not in body.lower()
    assert "$3.75" in body  # cards: today's spend
    assert (
        "1 call on 1 model has no price" in body and 'href="/settings/pricing/">add a price' in body
    )
    assert "re-priced once a price exists" not in body
    assert "Month-end forecast" in body and "average of the last 7 complete days" in body
    # top customers link to their detail pages, quoted
    assert f'href="/customers/{quote("cust/ä 1", safe="/")}/' in body
    assert "big-co" in body


def _table(client, url: str) -> str:
    """The page's table only (the filter bar above it suggests every value)."""
    html = client.get(url).content.decode()
    return html[html.index('id="dimension-table"') :]


def test_tables_sort_search_and_page(owner_client, spend):
    by_cost = _table(owner_client, "/customers/?sort=-cost")
    assert by_cost.index("big-co") < by_cost.index("cust/ä 1") < by_cost.index("(untagged)")
    by_name = _table(owner_client, "/customers/?sort=name")
    assert by_name.index("(untagged)") < by_name.index("big-co") < by_name.index("cust/ä 1")
    searched = _table(owner_client, "/customers/?q=BIG")
    assert "big-co" in searched and "cust/ä 1" not in searched
    models = _table(owner_client, "/models/?sort=-calls")
    assert models.index("gpt-4o") < models.index("claude-opus-4")
    assert owner_client.get("/features/").status_code == 200
    assert owner_client.get("/customers/?page=99").status_code == 200  # clamps to the last page


def test_detail_pages(owner_client, spend, api_key):
    customer = owner_client.get(f"/customers/{quote('cust/ä 1', safe='/')}/")
    body = customer.content.decode()
    assert customer.status_code == 200
    assert "$0.750" in body and 'id="trend-chart"' in body and "Most-used models" in body
    assert owner_client.get("/customers/(untagged)/").status_code == 200
    assert owner_client.get("/features/chat/").status_code == 200
    assert owner_client.get("/models/claude-opus-4/").status_code == 200
    assert owner_client.get(f"/keys/{api_key.row.pk}/").status_code == 200
    assert owner_client.get("/customers/nobody/").status_code == 404


def test_requests_log_filters_pages_and_detail(owner_client, spend):
    log = owner_client.get("/requests/?customer_id=big-co").content.decode()
    assert "claude-opus-4" in log and "mystery" in log  # the model list still offers all
    assert log.count('href="/requests/req_t') == 1
    status = owner_client.get("/requests/?status=upstream_error").content.decode()
    assert status.count('href="/requests/req_t') == 1
    assert "/api/costs/export?format=csv&amp;status=upstream_error&amp;start_date=" in status
    detail = owner_client.get(f"/requests/{spend[2].request_id}/")
    assert detail.status_code == 200
    shown = detail.content.decode()
    assert ">$3.00</span>" in shown and "$3 exactly" in shown and "3.0000000000" not in shown
    assert owner_client.get("/requests/req_nope/").status_code == 404


def test_requests_log_keyset_pages(owner_client, org, ingest):
    t = timezone.now() - timedelta(hours=1)
    ingest(*(call(org, t + timedelta(seconds=n)) for n in range(60)))
    first = owner_client.get("/requests/").content.decode()
    assert first.count('href="/requests/req_t') == 50 and 'id="older"' in first
    older = first.split('id="older" href="')[1].split('"')[0].replace("&amp;", "&")
    second = owner_client.get(f"/requests/{older}").content.decode()
    assert second.count('href="/requests/req_t') == 10 and 'id="older"' not in second


def test_traces_pages(owner_client, spend):
    assert "run-1" in owner_client.get("/traces/").content.decode()
    trace = owner_client.get("/traces/run-1/")
    assert trace.status_code == 200 and "$0.750" in trace.content.decode()
    assert owner_client.get("/traces/nope/").status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/dashboard/?start_date=yesterday",
        "/customers/?sort=colour",
        "/requests/?status=fine",
        "/models/?start_date=2026-02-01&end_date=2026-01-01",
        "/requests/?cursor=bogus",
    ],
)
def test_bad_page_parameters_are_400_with_a_message(owner_client, spend, url):
    response = owner_client.get(url)
    assert response.status_code == 400
    assert 'id="param-error"' in response.content.decode()


def test_date_range_picker_keeps_other_params(owner_client, spend):
    body = owner_client.get("/customers/?q=big&sort=calls&range=7d").content.decode()
    assert 'href="?q=big&amp;range=30d&amp;sort=calls"' in body
    assert '<input type="hidden" name="q" value="big">' in body


def test_most_used_models_are_sorted_by_calls(owner_client, org, ingest):
    t = timezone.now() - timedelta(minutes=5)
    ingest(
        call(org, t, cost="10.0000000000", model="rare-but-dear", customer_id="c1"),
        call(org, t, cost="0.0100000000", model="cheap-and-busy", customer_id="c1"),
        call(org, t, cost="0.0100000000", model="cheap-and-busy", customer_id="c1"),
    )
    page = owner_client.get("/customers/c1/").content.decode()
    table = page[page.index("Most-used models") :]
    assert table.index("cheap-and-busy") < table.index("rare-but-dear")  # 3 calls before 1


def test_first_call_with_a_key_is_linked_and_tenant_scoped(
    owner_client, org, api_key, other_api_key, ingest
):
    url = f"/dashboard/first-call.json?key_id={api_key.row.pk}"
    assert owner_client.get(url).json() == {"has_calls": False}
    ingest(call(org, timezone.now(), cost=None, model="gpt-4o-mini", api_key_id=api_key.row.pk))
    event = UsageEvent.objects.get(api_key=api_key.row)
    assert owner_client.get(url).json() == {
        "has_calls": True,
        "request_id": event.request_id,
        "url": f"/requests/{event.request_id}/",
        "model": "gpt-4o-mini",
        "status": "success",
        "cost": "unpriced",
    }
    # Another organization's key: the same 404 as a key that does not exist.
    theirs = owner_client.get(f"/dashboard/first-call.json?key_id={other_api_key.row.pk}")
    assert theirs.status_code == 404
    assert owner_client.get("/dashboard/first-call.json?key_id=999999").status_code == 404
    assert owner_client.get("/dashboard/first-call.json?key_id=x").status_code == 400


def test_live_marker_moves_with_our_calls_only(owner_client, org, other_org, ingest):
    assert owner_client.get("/dashboard/live.json").json() == {"latest": ""}
    ingest(call(org, timezone.now()))
    ours = owner_client.get("/dashboard/live.json").json()["latest"]
    assert ours == str(UsageEvent.objects.get(organization=org).pk)
    ingest(call(other_org, timezone.now()))
    assert owner_client.get("/dashboard/live.json").json()["latest"] == ours


def test_live_marker_is_read_once_for_all_open_pages(owner_client, org, ingest, settings):
    """The organization's open pages share its marker for a second
    (AISPENDTRACK_LIVE_MARKER_SECONDS): another tab's poll reads no event."""
    ingest(call(org, timezone.now()))
    first = owner_client.get("/dashboard/live.json").json()["latest"]
    with CaptureQueriesContext(connection) as polled:
        assert owner_client.get("/dashboard/live.json").json()["latest"] == first
    assert not [q for q in polled.captured_queries if "analytics_" in q["sql"]]
    ingest(call(org, timezone.now()))  # within the second: still shared
    assert owner_client.get("/dashboard/live.json").json()["latest"] == first
    settings.AISPENDTRACK_LIVE_MARKER_SECONDS = 0  # each poll reads it
    newest = str(UsageEvent.objects.filter(organization=org).latest("created_at", "pk").pk)
    assert owner_client.get("/dashboard/live.json").json()["latest"] == newest != first


def test_requests_export_is_what_is_on_screen_and_suggests_our_own_values(
    owner_client, org, other_org, ingest
):
    now = timezone.now()
    ingest(
        call(org, now, customer_id="ours-1", feature="chat"),
        call(org, now - timedelta(days=40), customer_id="too-old"),
        call(other_org, now, customer_id="theirs-1", feature="secret-feature"),
    )
    today = org_today(org)
    page = owner_client.get("/requests/").content.decode()  # default: last 30 days
    start, end = (today - timedelta(days=29)).isoformat(), today.isoformat()
    link = f"/api/costs/export?format=csv&amp;start_date={start}&amp;end_date={end}"
    assert link in page
    suggestions = page[page.index('<datalist id="customer-values">') :]
    assert '<option value="ours-1">' in suggestions and "theirs-1" not in page
    assert "secret-feature" not in page

    export = owner_client.get(link.replace("&amp;", "&"))
    assert export["Content-Disposition"] == (
        f'attachment; filename="aispendtrack-costs-{start}_{end}.csv"'
    )
    body = b"".join(export.streaming_content).decode()
    assert "ours-1" in body and "too-old" not in body and "theirs-1" not in body

    filtered = owner_client.get("/requests/?range=7d&customer_id=ours-1").content.decode()
    week = (today - timedelta(days=6)).isoformat()
    assert f"customer_id=ours-1&amp;start_date={week}&amp;end_date={end}" in filtered


def test_trace_timeline_steps_in_order_with_bars_and_cost(owner_client, org, other_org, ingest):
    t0 = timezone.now() - timedelta(minutes=10)
    ingest(
        call(org, t0, trace_id="agent-1", model="step-a", latency_ms=1000, cost="0.0100000000"),
        call(org, t0 + timedelta(seconds=1), trace_id="agent-1", model="step-b", latency_ms=1000),
        call(org, t0 + timedelta(seconds=3), trace_id="agent-1", model="step-c", latency_ms=1000),
        call(other_org, t0, trace_id="agent-1", model="not-ours"),
    )
    page = owner_client.get("/traces/agent-1/").content.decode()
    timeline = page[page.index('id="trace-timeline"') : page.index("</table>")]
    # The trace runs 4 s (t0 to t0 + 3 s + 1 s): steps start at 0, 25 and 75 %, each 25 % long.
    assert 'style="left: 0.0%; width: 25.0%"' in timeline
    assert 'style="left: 25.0%; width: 25.0%"' in timeline
    assert 'style="left: 75.0%; width: 25.0%"' in timeline
    assert timeline.index("1. step-a") < timeline.index("2. step-b") < timeline.index("3. step-c")
    assert "1.0 s" in timeline and "$0.0100" in timeline and "not-ours" not in page
