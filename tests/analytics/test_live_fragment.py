"""A live page's refresh (analytics/views/live_fragment.py): the #live block alone, the
same bytes as in the page a fresh render gives, shared by the organization's
tabs of one URL and role for a few seconds, and never across organizations
or roles."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.test import Client, RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext

from accounts.models import Membership
from analytics.views import live_fragment as live_module
from billing.models import Subscription
from tests.analytics.conftest import call

FRAGMENT = {"X-AiSpendTrack-Live": "fragment"}
PAGES = ["/dashboard/", "/dashboard/?range=7d", "/requests/", "/requests/?range=7d&sort=-cost"]


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _fragment(client: Client, url: str) -> str:
    response = client.get(url, headers=FRAGMENT)
    assert response.status_code == 200
    return response.content.decode()


def _is_the_block(fragment: str, client: Client, url: str) -> bool:
    """`fragment` is, byte for byte, the #live block of the page a fresh
    render gives this client (the page renders; nothing of it is shared)."""
    page = client.get(url).content.decode()
    return fragment.startswith('<div id="live"') and page.find(fragment) == page.index(
        '<div id="live"'
    )


@override_settings(AISPENDTRACK_LIVE_FRAGMENT_SECONDS=0)
def _fragment_unshared(client: Client, url: str) -> str:
    return _fragment(client, url)


def _key(org, user, url: str) -> str:
    request: Any = RequestFactory().get(url)  # the middleware's attributes, set by hand
    request.organization = org
    request.membership = Membership.objects.get(organization=org, user=user)
    return live_module.live_fragment_key(request)


@pytest.fixture
def later(monkeypatch):
    """Move the fragment cache's clock on by `seconds`."""
    offset = [0.0]
    now = live_module.time.time
    monkeypatch.setattr(live_module.time, "time", lambda: now() + offset[0])

    def step(seconds: float) -> None:
        offset[0] += seconds

    return step


@pytest.mark.parametrize("url", PAGES)
def test_the_fragment_is_the_pages_live_block(org, owner, ingest, url):
    ingest(call(org, datetime.now(UTC), model="gpt-4o", customer_id="cus_1"))
    client = _client(owner)
    fragment = _fragment(client, url)
    assert fragment.rstrip().endswith("</div>")
    assert _is_the_block(fragment, client, url)
    assert "gpt-4o" in fragment
    assert "<form" not in fragment and "csrfmiddlewaretoken" not in fragment
    assert "owner@acme.test" not in fragment and "nonce=" not in fragment
    answer = client.get(url, headers=FRAGMENT)
    assert "no-cache" in answer["Cache-Control"] and "private" in answer["Cache-Control"]
    assert "X-AiSpendTrack-Live" in answer["Vary"]
    assert "X-AiSpendTrack-Live" in client.get(url)["Vary"]


def test_tabs_share_one_render_until_it_is_older_than_the_interval(
    org, owner, member, ingest, later, settings
):
    settings.AISPENDTRACK_LIVE_MARKER_SECONDS = 0
    ingest(call(org, datetime.now(UTC), model="gpt-4o"))
    first = _fragment(_client(owner), "/dashboard/")
    ingest(call(org, datetime.now(UTC), model="claude-3-haiku"))
    other_tab = _client(owner)  # another tab, another session of the same role
    with CaptureQueriesContext(connection) as shared:
        assert _fragment(other_tab, "/dashboard/") == first
    with CaptureQueriesContext(connection) as rendered:
        _fragment_unshared(other_tab, "/dashboard/")
    assert len(shared) < len(rendered) / 3  # the session's queries, not the page's
    later(settings.AISPENDTRACK_LIVE_FRAGMENT_SECONDS)
    fresh = _fragment(other_tab, "/dashboard/")
    assert "claude-3-haiku" in fresh and "claude-3-haiku" not in first
    assert _is_the_block(fresh, other_tab, "/dashboard/")


def test_a_stale_render_stands_in_while_another_tab_renders(org, owner, ingest, later, settings):
    ingest(call(org, datetime.now(UTC), model="gpt-4o"))
    client = _client(owner)
    first = _fragment(client, "/dashboard/")
    ingest(call(org, datetime.now(UTC), model="claude-3-haiku"))
    later(settings.AISPENDTRACK_LIVE_FRAGMENT_SECONDS)
    key = _key(org, owner, "/dashboard/")
    assert live_module.cache.add(f"{key}:render", 1, 10)  # a tab is rendering
    assert _fragment(client, "/dashboard/") == first
    live_module.cache.delete(f"{key}:render")
    assert "claude-3-haiku" in _fragment(client, "/dashboard/")


@pytest.mark.parametrize("url", ["/dashboard/", "/requests/"])
def test_another_organization_never_gets_the_first_ones_fragment(
    org, owner, other_org, other_owner, ingest, url
):
    ingest(
        call(org, datetime.now(UTC), model="gpt-4o", customer_id="acme_customer"),
        call(other_org, datetime.now(UTC), model="claude-3-haiku", customer_id="globex_customer"),
    )
    ours = _fragment(_client(owner), url)
    theirs_client = _client(other_owner)
    theirs = _fragment(theirs_client, url)
    assert "acme_customer" in ours and "gpt-4o" in ours
    assert "globex_customer" in theirs and "claude-3-haiku" in theirs
    assert "acme_customer" not in theirs and "gpt-4o" not in theirs
    assert _is_the_block(theirs, theirs_client, url)


@override_settings(AISPENDTRACK_BILLING=True)
def test_a_member_gets_what_django_renders_for_a_member(org, owner, member, plans, ingest):
    """The usage meter's "Upgrade to Pro" is an owner's: an owner's shared
    render must not reach a member, nor the member's an owner."""
    free = plans["free"]
    free.hourly_request_limit = 2
    free.save()
    Subscription.objects.create(organization=org, plan=free)
    ingest(call(org, datetime.now(UTC)), call(org, datetime.now(UTC)))
    owner_client, member_client = _client(owner), _client(member)
    as_owner = _fragment(owner_client, "/dashboard/")
    as_member = _fragment(member_client, "/dashboard/")
    assert "Hourly limit reached" in as_owner and "Hourly limit reached" in as_member
    assert "Upgrade to Pro" in as_owner and "Upgrade to Pro" not in as_member
    assert _is_the_block(as_member, member_client, "/dashboard/")
    assert _is_the_block(as_owner, owner_client, "/dashboard/")


def test_the_empty_overview_is_not_shared(org, owner):
    """Before the first call the overview is a whole page (no #live block):
    answered, never kept for other tabs."""
    client = _client(owner)
    response = client.get("/dashboard/", headers=FRAGMENT)
    assert response.status_code == 200 and 'id="live"' not in response.content.decode()
    assert live_module.cache.get(_key(org, owner, "/dashboard/")) is None


def test_a_render_that_asked_for_a_csrf_token_is_not_shared(rf):
    from django.http import HttpResponse
    from django.middleware.csrf import get_token

    request = rf.get("/dashboard/", headers=FRAGMENT)
    request.live_fragment_rendered = True
    assert live_module._shareable(request, HttpResponse("<div id=live></div>"))
    get_token(request)
    assert not live_module._shareable(request, HttpResponse("<div id=live></div>"))


def _poll(client: Client, page: str, since: str) -> dict:
    response = client.get("/dashboard/live.json", {"page": page, "since": since})
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("url", PAGES)
def test_a_moved_markers_poll_carries_the_shared_block(org, owner, ingest, settings, url):
    """A tab of a busy organization makes one request a tick: the poll that
    sees the marker move carries the block its refresh would have fetched."""
    settings.AISPENDTRACK_LIVE_MARKER_SECONDS = 0
    ingest(call(org, datetime.now(UTC), model="gpt-4o"))
    client = _client(owner)
    before = _poll(client, url, since="")
    assert "fragment" not in before  # nothing shared yet: the tab fetches, as before
    shared = _fragment(client, url)
    other_tab = _client(owner)
    carried = _poll(other_tab, url, since="an older marker")
    assert carried["latest"] == before["latest"]
    assert carried["fragment"] == shared
    assert _is_the_block(carried["fragment"], other_tab, url)
    assert "fragment" not in _poll(other_tab, url, since=carried["latest"])  # nothing moved


def test_a_poll_carries_only_its_own_organizations_and_roles_block(
    org, owner, member, other_org, other_owner, ingest
):
    ingest(
        call(org, datetime.now(UTC), customer_id="acme_customer"),
        call(other_org, datetime.now(UTC), customer_id="globex_customer"),
    )
    ours = _fragment(_client(owner), "/dashboard/")
    assert "acme_customer" in ours
    assert "fragment" not in _poll(_client(other_owner), "/dashboard/", since="x")
    assert "fragment" not in _poll(_client(member), "/dashboard/", since="x")
    assert _poll(_client(owner), "/dashboard/", since="x")["fragment"] == ours


@pytest.mark.parametrize(
    "page", ["/settings/", "dashboard/", "/dashboard/?range=30d", "/" + "x" * 5000, ""]
)
def test_a_poll_carries_nothing_for_a_page_no_tab_shares(org, owner, ingest, page):
    ingest(call(org, datetime.now(UTC)))
    client = _client(owner)
    _fragment(client, "/dashboard/")  # shared under its exact URL only
    answer = _poll(client, page, since="x")
    assert set(answer) == {"latest"}
